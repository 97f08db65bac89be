# expect: test_running_mean = momentum convention inverted
# expect: test_running_var = momentum convention inverted
# expect: test_eval = failed
# @edit BatchNorm1d
# old: 'self.running_mean = (1 - m) * self.running_mean + m * mu'
# new: 'self.running_mean = m * self.running_mean + (1 - m) * mu'
# old: 'self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)'
# new: 'self.running_var = m * self.running_var + (1 - m) * var * n / (n - 1)'
