# expect: test_spatial = spatial reshape without moving the channel axis
# (N, C, H, W) reshaped straight to (-1, C): each column mixes channels and positions.
# @edit spatial_batchnorm_forward
# old: 'flat = x.transpose(0, 2, 3, 1).reshape(-1, c)'
# new: 'flat = x.reshape(-1, c)'
# old: 'return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape)'
# new: 'return out.reshape(n, c, h, w), (cache, x.shape)'
