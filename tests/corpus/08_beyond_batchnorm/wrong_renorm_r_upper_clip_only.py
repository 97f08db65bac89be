# expect: test_renorm_limits = Batch Renorm with r clipped only from above
# expect: test_renorm_clip = Batch Renorm with r clipped only from above
# @edit batchrenorm_forward
# old: 'r = np.clip(sigma_b / sigma, 1.0 / r_max, r_max)'
# new: 'r = np.minimum(sigma_b / sigma, r_max)'
