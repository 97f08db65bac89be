# expect: test_running = momentum convention inverted
# pipeline: in-process only
# @edit SyncBatchNorm
# old: 'factor = self.momentum'
# new: 'factor = 1 - self.momentum'
