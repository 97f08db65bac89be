# expect: full
# Running statistics updated in place with lerp_ and augmented assignment on the buffers.
# @edit modules
# old: 'self.running_mean.mul_(1 - factor).add_(factor * mean)'
# new: 'self.running_mean.lerp_(mean, factor)'
# old: 'self.running_var.mul_(1 - factor).add_(factor * var)'
# new: 'self.running_var *= 1 - factor\n        self.running_var += factor * var'
