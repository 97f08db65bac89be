# expect: test_train = momentum convention inverted
# expect: test_eval = failed
# expect: test_momentum_none = failed
# @edit modules
# old: 'self.running_mean.mul_(1 - factor).add_(factor * mean)'
# new: 'self.running_mean.mul_(factor).add_((1 - factor) * mean)'
# old: 'self.running_var.mul_(1 - factor).add_(factor * var)'
# new: 'self.running_var.mul_(factor).add_((1 - factor) * var)'
