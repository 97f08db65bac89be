# expect: test_running_var = running_var stored biased
# expect: test_eval = failed
# @edit BatchNorm1d
# old: 'self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)'
# new: 'self.running_var = (1 - m) * self.running_var + m * var'
