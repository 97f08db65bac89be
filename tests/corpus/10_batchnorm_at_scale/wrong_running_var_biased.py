# expect: test_running = running variance biased
# pipeline: in-process only
# @edit SyncBatchNormFunction
# old: 'running_var.mul_(1 - momentum).add_(momentum * unbiased)'
# new: 'running_var.mul_(1 - momentum).add_(momentum * var)'
