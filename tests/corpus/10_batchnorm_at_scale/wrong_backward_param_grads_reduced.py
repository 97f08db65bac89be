# expect: test_backward = parameter gradients all-reduced
# pipeline: in-process only
# @edit SyncBatchNormFunction
# old: 'return dx, dweight, dbias, None, None, None, None, None'
# new: 'return dx, sums[c:], sums[:c], None, None, None, None, None'
