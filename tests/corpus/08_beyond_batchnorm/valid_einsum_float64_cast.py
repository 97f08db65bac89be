# expect: full
# Statistics by einsum, computed in float64 and cast back to the input's dtype (float32 inputs
# come back float32); folding with einsum and a bias of zeros when b is None; Batch Renorm
# returning r and d with keepdims (shape (1, D)).
# @cell layernorm_forward
def layernorm_forward(x, gamma, beta, eps=1e-5):
    dtype = x.dtype
    x = x.astype(np.float64)
    d = x.shape[1]
    mu = np.einsum("nd->n", x) / d
    xc = x - mu[:, None]
    var = np.einsum("nd,nd->n", xc, xc) / d
    x_hat = xc / np.sqrt(var + eps)[:, None]
    out = np.einsum("nd,d->nd", x_hat, gamma) + beta
    return out.astype(dtype), (x_hat, var, eps, gamma, dtype)


# @cell layernorm_backward
def layernorm_backward(dout, cache):
    x_hat, var, eps, gamma, dtype = cache
    dout = dout.astype(np.float64)
    inv = 1 / np.sqrt(var + eps)[:, None]
    dx_hat = dout * gamma
    dx = inv * (
        dx_hat
        - dx_hat.mean(1, keepdims=True)
        - x_hat * np.einsum("nd,nd->n", dx_hat, x_hat)[:, None] / dout.shape[1]
    )
    return (
        dx.astype(dtype),
        np.einsum("nd,nd->d", dout, x_hat).astype(dtype),
        dout.sum(0).astype(dtype),
    )


# @cell fold_batchnorm
def fold_batchnorm(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    if b is None:
        b = np.zeros(W.shape[0], dtype=W.dtype)
    scale = gamma * (running_var + eps) ** -0.5
    if W.ndim == 2:
        W_folded = np.einsum("oi,o->oi", W, scale)
    else:
        W_folded = np.einsum("oikl,o->oikl", W, scale)
    return W_folded, beta + scale * (b - running_mean)


# @cell batchrenorm_forward
def batchrenorm_forward(x, gamma, beta, running_mean, running_var, r_max, d_max, eps=1e-5):
    mu = x.mean(axis=0, keepdims=True)
    sigma_b = np.sqrt(x.var(axis=0, keepdims=True) + eps)
    sigma = np.sqrt(running_var + eps)[None, :]
    r = np.minimum(np.maximum(sigma_b / sigma, 1 / r_max), r_max)
    d = np.minimum(np.maximum((mu - running_mean) / sigma, -d_max), d_max)
    out = gamma * ((x - mu) / sigma_b * r + d) + beta
    return out, r, d
