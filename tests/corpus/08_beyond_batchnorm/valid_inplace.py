# expect: full
# In-place arithmetic everywhere (x is centred in place, out built with *= and +=), statistics
# without keepdims, and a dict cache: the probe hands the function copies and records what it
# returns at once.
# @cell layernorm_forward
def layernorm_forward(x, gamma, beta, eps=1e-5):
    x = x.copy()
    x -= x.mean(axis=1)[:, None]
    inv = 1.0 / np.sqrt((x**2).mean(axis=1) + eps)
    x *= inv[:, None]
    out = x * gamma
    out += beta
    return out, {"x_hat": x, "inv": inv, "gamma": gamma}


# @cell layernorm_backward
def layernorm_backward(dout, cache):
    x_hat, inv, gamma = cache["x_hat"], cache["inv"], cache["gamma"]
    d = dout.shape[1]
    dx_hat = dout * gamma
    dx = dx_hat * d
    dx -= dx_hat.sum(axis=1)[:, None]
    dx -= x_hat * (dx_hat * x_hat).sum(axis=1)[:, None]
    dx *= inv[:, None] / d
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


# @cell groupnorm_forward
def groupnorm_forward(x, gamma, beta, G, eps=1e-5):
    n, c, h, w = x.shape
    xg = x.reshape(n, G, -1).copy()
    xg -= xg.mean(axis=-1, keepdims=True)
    xg /= np.sqrt(xg.var(axis=-1, keepdims=True) + eps)
    x_hat = xg.reshape(n, c, h, w)
    out = x_hat * gamma[None, :, None, None]
    out += beta[None, :, None, None]
    return out, {"x_hat": x_hat, "x": x, "G": G, "gamma": gamma, "eps": eps}


# @cell groupnorm_backward
def groupnorm_backward(dout, cache):
    x_hat, G, gamma = cache["x_hat"], cache["G"], cache["gamma"]
    n, c, h, w = dout.shape
    var = cache["x"].reshape(n, G, -1).var(axis=-1, keepdims=True)
    inv = (var + cache["eps"]) ** -0.5
    dxh = (dout * gamma[None, :, None, None]).reshape(n, G, -1)
    xh = x_hat.reshape(n, G, -1)
    m = xh.shape[-1]
    dx = m * dxh - dxh.sum(-1, keepdims=True) - xh * (dxh * xh).sum(-1, keepdims=True)
    dx *= inv / m
    return dx.reshape(n, c, h, w), np.sum(dout * x_hat, axis=(0, 2, 3)), dout.sum((0, 2, 3))
