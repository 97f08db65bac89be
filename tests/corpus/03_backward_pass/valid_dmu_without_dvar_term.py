# expect: full
# @cell batchnorm_backward
def batchnorm_backward(dout, cache):
    # dmu's term through dvar is dvar * mean(-2 (x - mu)) = 0 exactly, so it is left out
    x_hat, xc, var, std, gamma, eps = cache
    n = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * x_hat, axis=0)
    dx_hat = dout * gamma
    dvar = -0.5 * np.sum(dx_hat * xc, axis=0) / std**3
    dmu = -np.sum(dx_hat, axis=0) / std
    dx = dx_hat / std + 2.0 * dvar * xc / n + dmu / n
    return dx, dgamma, dbeta
