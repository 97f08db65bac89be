# expect: test_ln_backward = mean and variance treated as constants
# @edit layernorm_backward
# old: 'dx = inv * (\n        dx_hat\n        - dx_hat.mean(axis=1, keepdims=True)\n        - x_hat * (dx_hat * x_hat).mean(axis=1, keepdims=True)\n    )'
# new: 'dx = inv * dx_hat'
