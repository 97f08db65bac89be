# expect: full
# Moving statistics updated in place with assign_sub: r <- r - (1 - m) (r - batch).
# @edit layer
# old: 'self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)'
# new: 'self.moving_mean.assign_sub((1 - m) * (self.moving_mean - mean))'
# old: 'self.moving_variance.assign(m * self.moving_variance + (1 - m) * var)'
# new: 'self.moving_variance.assign_sub((1 - m) * (self.moving_variance - var))'
