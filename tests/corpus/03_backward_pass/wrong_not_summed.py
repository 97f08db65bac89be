# expect: test_dgamma = dgamma not summed over the batch
# expect: test_dbeta = dbeta not summed over the batch
# @cell batchnorm_backward
def batchnorm_backward(dout, cache):
    x_hat, xc, var, std, gamma, eps = cache
    n = dout.shape[0]
    dx = gamma / (n * std) * (n * dout - dout.sum(axis=0) - x_hat * (dout * x_hat).sum(axis=0))
    return dx, dout * x_hat, dout
