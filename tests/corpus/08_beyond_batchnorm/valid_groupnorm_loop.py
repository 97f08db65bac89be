# expect: full
# GroupNorm as a loop over the groups (slices of consecutive channels), with a cache of per-group
# lists; folding through W.reshape(C_out, -1).
# @cell groupnorm_forward
def groupnorm_forward(x, gamma, beta, G, eps=1e-5):
    n, c, h, w = x.shape
    k = c // G
    x_hat = np.empty_like(x)
    invs = []
    for g in range(G):
        part = x[:, g * k : (g + 1) * k]
        mu = part.mean(axis=(1, 2, 3), keepdims=True)
        inv = 1 / np.sqrt(((part - mu) ** 2).mean(axis=(1, 2, 3), keepdims=True) + eps)
        x_hat[:, g * k : (g + 1) * k] = (part - mu) * inv
        invs.append(inv)
    return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1), [x_hat, invs, gamma]


# @cell groupnorm_backward
def groupnorm_backward(dout, cache):
    x_hat, invs, gamma = cache
    k = dout.shape[1] // len(invs)
    dx = np.empty_like(dout)
    dxh = dout * gamma.reshape(1, -1, 1, 1)
    for g, inv in enumerate(invs):
        sl = slice(g * k, (g + 1) * k)
        a, xh = dxh[:, sl], x_hat[:, sl]
        ax = (1, 2, 3)
        dx[:, sl] = inv * (a - a.mean(ax, keepdims=True) - xh * (a * xh).mean(ax, keepdims=True))
    return dx, (dout * x_hat).sum(axis=(0, 2, 3)), dout.sum(axis=(0, 2, 3))


# @cell fold_batchnorm
def fold_batchnorm(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / np.sqrt(running_var + eps)
    W_folded = (W.reshape(W.shape[0], -1) * scale[:, None]).reshape(W.shape)
    shift = beta - running_mean * scale
    return W_folded, shift if b is None else shift + b * scale
