# expect: test_running = batch statistics in eval mode
# pipeline: in-process only
# @edit SyncBatchNorm
# old: 'if self.training or not self.track_running_stats:'
# new: 'if True:'
