# expect: test_running = momentum convention inverted
# @edit SyncBatchNorm
# old: 'factor = self.momentum'
# new: 'factor = 1 - self.momentum'
