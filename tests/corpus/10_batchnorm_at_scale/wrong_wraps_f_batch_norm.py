# expect: test_forward = wraps the framework's batch norm
# expect: test_backward = wraps the framework's batch norm
# expect: test_running = wraps the framework's batch norm
# The statistics synchronized by hand, the normalization left to F.batch_norm.
# @edit SyncBatchNormFunction
# old: 'x_hat = (x - mean.view(shape)) * inv_std.view(shape)'
# new: 'x_hat = torch.nn.functional.batch_norm(x, mean, var, None, None, False, 0.0, eps)'
