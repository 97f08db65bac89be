# expect: test_fold_dense = folding forgets the old bias
# expect: test_fold_conv = folding forgets the old bias
# @edit fold_batchnorm
# old: 'b_folded = (b0 - running_mean) * scale + beta'
# new: 'b_folded = beta - running_mean * scale'
