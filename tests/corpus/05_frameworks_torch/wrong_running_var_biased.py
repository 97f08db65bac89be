# expect: test_train = running variance biased
# expect: test_momentum_none = running variance biased
# expect: test_eval = failed
# @edit modules
# old: 'var = x.var(dim=dims, unbiased=False) * n / max(n - 1, 1)'
# new: 'var = x.var(dim=dims, unbiased=False)'
