# expect: test_renorm_limits = Batch Renorm with r not clipped
# expect: test_renorm_clip = Batch Renorm with r not clipped
# @edit batchrenorm_forward
# old: 'r = np.clip(sigma_b / sigma, 1.0 / r_max, r_max)'
# new: 'r = sigma_b / sigma'
