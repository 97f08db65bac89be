# expect: test_dx = mean and variance treated as constants
# @cell batchnorm_backward
def batchnorm_backward(dout, cache):
    x_hat, xc, var, std, gamma, eps = cache
    dx = dout * gamma / std  # as if mu and var did not depend on x
    return dx, np.sum(dout * x_hat, axis=0), np.sum(dout, axis=0)
