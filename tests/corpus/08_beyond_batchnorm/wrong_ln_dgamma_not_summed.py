# expect: test_ln_backward = dgamma not summed over the batch
# @edit layernorm_backward
# old: 'dgamma = (dout * x_hat).sum(axis=0)'
# new: 'dgamma = dout * x_hat'
