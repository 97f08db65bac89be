# expect: full
# @edit BatchNorm1d
# old: 'self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)'
# new: 'self.running_var = (1 - m) * self.running_var + m * x.var(axis=0, ddof=1)'
