# expect: test_eval = batch statistics in eval mode
# expect: test_state_dict = failed
# @edit modules
# old: 'if self.training or not self.track_running_stats:'
# new: 'if True:'
