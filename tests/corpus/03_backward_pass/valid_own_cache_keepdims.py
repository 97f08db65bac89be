# expect: full
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0, keepdims=True)
    var = x.var(axis=0, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv
    return gamma * x_hat + beta, {"x_hat": x_hat, "inv": inv, "gamma": gamma}


# @cell batchnorm_backward
def batchnorm_backward(dout, cache):
    x_hat, inv, gamma = cache["x_hat"], cache["inv"], cache["gamma"]
    n = dout.shape[0]
    dx_hat = dout * gamma
    dx = (
        inv
        / n
        * (
            n * dx_hat
            - dx_hat.sum(axis=0, keepdims=True)
            - x_hat * (dx_hat * x_hat).sum(axis=0, keepdims=True)
        )
    )
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


# @cell batchnorm_backward_fast
def batchnorm_backward_fast(dout, cache):
    return batchnorm_backward(dout, cache)


# @cell spatial_batchnorm_forward
def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    out, cache = batchnorm_forward(np.moveaxis(x, 1, -1).reshape(-1, c), gamma, beta, eps)
    return np.moveaxis(out.reshape(n, h, w, c), -1, 1), (cache, x.shape)


# @cell spatial_batchnorm_backward
def spatial_batchnorm_backward(dout, cache):
    inner, (n, c, h, w) = cache
    dx, dgamma, dbeta = batchnorm_backward(np.moveaxis(dout, 1, -1).reshape(-1, c), inner)
    return np.moveaxis(dx.reshape(n, h, w, c), -1, 1), dgamma, dbeta
