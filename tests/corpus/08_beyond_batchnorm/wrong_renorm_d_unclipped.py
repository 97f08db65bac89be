# expect: test_renorm_limits = Batch Renorm with d not clipped
# expect: test_renorm_clip = Batch Renorm with d not clipped
# @edit batchrenorm_forward
# old: 'd = np.clip((mu - running_mean) / sigma, -d_max, d_max)'
# new: 'd = (mu - running_mean) / sigma'
