# expect: test_train = momentum convention inverted
# expect: test_axis = momentum convention inverted
# expect: test_inference = failed
# expect: test_fit = failed
# @edit layer
# old: 'self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)'
# new: 'self.moving_mean.assign((1 - m) * self.moving_mean + m * mean)'
# old: 'self.moving_variance.assign(m * self.moving_variance + (1 - m) * var)'
# new: 'self.moving_variance.assign((1 - m) * self.moving_variance + m * var)'
