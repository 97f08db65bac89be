# expect: test_forward = exception
# expect: test_backward = exception
# expect: test_running = exception
# pipeline: in-process only
# Rank 0 calls one all-reduce more than rank 1: the ranks' collectives no longer pair up. The
# checks must end in bounded time and say which rank failed first.
# @edit SyncBatchNormFunction
# old: 'c = x.shape[1]'
# new: 'c = x.shape[1]; _ = dist.get_rank() == 0 and dist.all_reduce(torch.zeros(7, dtype=x.dtype))'
