# expect: test_ln_forward = LN statistics over the batch axis
# expect: test_ln_backward = LN statistics over the batch axis
# Layer norm written as batch norm: statistics over axis 0, in the forward and the backward.
# @cell layernorm_forward
def layernorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    xc = x - mu
    inv = 1.0 / np.sqrt((xc * xc).mean(axis=0) + eps)
    x_hat = xc * inv
    return gamma * x_hat + beta, (x_hat, inv, gamma)


# @cell layernorm_backward
def layernorm_backward(dout, cache):
    x_hat, inv, gamma = cache
    dx_hat = dout * gamma
    dx = inv * (dx_hat - dx_hat.mean(axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
