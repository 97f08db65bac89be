# expect: test_dx = mean treated as a constant
# @cell batchnorm_backward
def batchnorm_backward(dout, cache):
    x_hat, xc, var, std, gamma, eps = cache
    n = dout.shape[0]
    dx_hat = dout * gamma
    dvar = np.sum(dx_hat * xc, axis=0) * -0.5 * (var + eps) ** -1.5
    dx = dx_hat / std + dvar * 2.0 * xc / n
    return dx, np.sum(dout * x_hat, axis=0), np.sum(dout, axis=0)
