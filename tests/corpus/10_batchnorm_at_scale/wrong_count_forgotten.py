# expect: test_forward = count forgotten
# expect: test_backward = count forgotten
# expect: test_running = count forgotten
# The common shortcut: average the ranks' means and variances, as if every rank held as many
# values as this one.
# @edit SyncBatchNormFunction
# old: 'stats = torch.cat([x.sum(dim=dims), (x * x).sum(dim=dims), count])'
# new: 'stats = torch.cat([x.mean(dim=dims), x.var(dim=dims, unbiased=False), count])'
# old: 'total = stats[2 * c]'
# new: 'world = dist.get_world_size(process_group); stats /= world; total = count[0] * world'
# old: 'mean = stats[:c] / total'
# new: 'mean = stats[:c]'
# old: 'var = (stats[c : 2 * c] / total - mean * mean).clamp_min(0)'
# new: 'var = stats[c : 2 * c]'
