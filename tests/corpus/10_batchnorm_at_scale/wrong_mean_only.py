# expect: test_forward = only the mean synchronized
# @edit SyncBatchNormFunction
# old: 'stats = torch.cat([x.sum(dim=dims), (x * x).sum(dim=dims), count])'
# new: 'stats = torch.cat([x.sum(dim=dims), x.sum(dim=dims), count])'
# old: 'var = (stats[c : 2 * c] / total - mean * mean).clamp_min(0)'
# new: 'var = ((x - mean.view(shape)) ** 2).mean(dim=dims)'
