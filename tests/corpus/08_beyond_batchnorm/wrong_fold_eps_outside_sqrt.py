# expect: test_fold_dense = folding with eps outside the square root
# expect: test_fold_conv = folding with eps outside the square root
# @edit fold_batchnorm
# old: 'scale = gamma / np.sqrt(running_var + eps)'
# new: 'scale = gamma / (np.sqrt(running_var) + eps)'
