# expect: test_momentum_none = cumulative average ignored
# @edit modules
# old: 'factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum'
# new: 'factor = 0.1 if self.momentum is None else self.momentum'
