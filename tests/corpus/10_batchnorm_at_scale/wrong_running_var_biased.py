# expect: test_running = running variance biased
# @edit SyncBatchNormFunction
# old: 'running_var.mul_(1 - momentum).add_(momentum * unbiased)'
# new: 'running_var.mul_(1 - momentum).add_(momentum * var)'
