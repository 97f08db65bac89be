# expect: test_backward = parameter gradients all-reduced
# @edit SyncBatchNormFunction
# old: 'return dx, dweight, dbias, None, None, None, None, None'
# new: 'return dx, sums[c:], sums[:c], None, None, None, None, None'
