# expect: test_dgamma = dgamma uses x instead of x_hat
# expect: test_fast = dgamma uses x instead of x_hat
# expect: test_spatial = dgamma uses x instead of x_hat
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc * xc).mean(axis=0)
    std = np.sqrt(var + eps)
    x_hat = xc / std
    return gamma * x_hat + beta, (x, x_hat, std, gamma)


# @cell batchnorm_backward
def batchnorm_backward(dout, cache):
    x, x_hat, std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dx = gamma / (n * std) * (n * dout - dbeta - x_hat * (dout * x_hat).sum(axis=0))
    return dx, (dout * x).sum(axis=0), dbeta


# @cell batchnorm_backward_fast
def batchnorm_backward_fast(dout, cache):
    return batchnorm_backward(dout, cache)


# @cell spatial_batchnorm_backward
def spatial_batchnorm_backward(dout, cache):
    inner, (n, c, h, w) = cache
    flat = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_fast(flat, inner)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta
