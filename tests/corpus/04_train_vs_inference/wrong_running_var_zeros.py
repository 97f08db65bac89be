# expect: test_init = running_var initialised to zeros
# expect: test_running_var = running_var initialised to zeros
# expect: test_eval = failed
# @edit BatchNorm1d
# old: 'self.running_var = np.ones(num_features)'
# new: 'self.running_var = np.zeros(num_features)'
