# expect: test_fold_dense = folding with the variance instead of the standard deviation
# expect: test_fold_conv = folding with the variance instead of the standard deviation
# @edit fold_batchnorm
# old: 'scale = gamma / np.sqrt(running_var + eps)'
# new: 'scale = gamma / (running_var + eps)'
