# expect: test_forward = statistics not synchronized
# expect: test_backward = backward not synchronized
# expect: test_running = running variance unbiased with the local count
# pipeline: in-process only
# Plain BatchNorm: every all-reduce removed.
# @edit SyncBatchNormFunction
# old: 'dist.all_reduce(stats, op=dist.ReduceOp.SUM, group=process_group)'
# new: 'pass'
# old: 'dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=ctx.process_group)'
# new: 'pass'
