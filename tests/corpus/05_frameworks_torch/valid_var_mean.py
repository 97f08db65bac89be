# expect: full
# @edit modules
# old: 'mean = x.mean(dim=dims)'
# new: 'mean = torch.var_mean(x, dim=dims)[1]'
# old: 'var = x.var(dim=dims, unbiased=False) * n / max(n - 1, 1)'
# new: 'var = torch.var_mean(x, dim=dims, correction=1)[0]'
