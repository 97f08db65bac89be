# expect: test_backward = backward not synchronized
# The forward pass is right; the backward divides this rank's sums by the global count.
# @edit SyncBatchNormFunction
# old: 'dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=ctx.process_group)'
# new: 'pass'
