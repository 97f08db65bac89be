# expect: test_renorm_backward = Batch Renorm gradient without r
# BN's gradient: the factor r is left out of dx.
# @edit batchrenorm_backward
# old: 'dx = gamma * r / sigma_b * ('
# new: 'dx = gamma / sigma_b * ('
