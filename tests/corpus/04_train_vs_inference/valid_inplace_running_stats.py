# expect: full
# The running statistics updated in place, as PyTorch does with mul_/add_: the probe must record
# a copy of each state at the moment it reads it, not the array the later steps keep changing.
# @edit BatchNorm1d
# old: 'self.running_mean = (1 - m) * self.running_mean + m * mu'
# new: 'self.running_mean *= 1 - m\n        self.running_mean += m * x.mean(0)'
# old: 'self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)'
# new: 'self.running_var *= 1 - m\n        self.running_var += m * x.var(0, ddof=1)'
