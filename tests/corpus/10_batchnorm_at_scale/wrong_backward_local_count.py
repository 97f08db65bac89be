# expect: test_backward = count in backward is the local one
# @edit SyncBatchNormFunction
# old: 'c = grad_out.shape[1]'
# new: 'c = grad_out.shape[1]; total = grad_out.numel() // c'
