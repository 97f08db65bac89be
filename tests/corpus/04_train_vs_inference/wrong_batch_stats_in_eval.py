# expect: test_eval = batch statistics in eval mode
# expect: test_running_mean = running statistics updated in eval mode
# expect: test_running_var = running statistics updated in eval mode
# @edit BatchNorm1d
# old: 'if not self.training:'
# new: 'if False:'
