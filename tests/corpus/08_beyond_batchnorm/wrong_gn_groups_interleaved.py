# expect: test_gn_forward = GN groups over the wrong axis
# expect: test_gn_backward = GN groups over the wrong axis
# Groups of every G-th channel: x.reshape(N, C // G, G, H, W), statistics over axes (1, 3, 4).
# @cell groupnorm_forward
def groupnorm_forward(x, gamma, beta, G, eps=1e-5):
    n, c, h, w = x.shape
    xg = x.reshape(n, c // G, G, h, w)
    mu = xg.mean(axis=(1, 3, 4), keepdims=True)
    inv = 1.0 / np.sqrt(((xg - mu) ** 2).mean(axis=(1, 3, 4), keepdims=True) + eps)
    x_hat = ((xg - mu) * inv).reshape(x.shape)
    return gamma.reshape(1, c, 1, 1) * x_hat + beta.reshape(1, c, 1, 1), (x_hat, inv, gamma, G)


# @cell groupnorm_backward
def groupnorm_backward(dout, cache):
    x_hat, inv, gamma, G = cache
    n, c, h, w = dout.shape
    ax = (1, 3, 4)
    dxh = (dout * gamma.reshape(1, c, 1, 1)).reshape(n, c // G, G, h, w)
    xh = x_hat.reshape(n, c // G, G, h, w)
    dx = inv * (
        dxh - dxh.mean(axis=ax, keepdims=True) - xh * (dxh * xh).mean(axis=ax, keepdims=True)
    )
    return dx.reshape(dout.shape), (dout * x_hat).sum(axis=(0, 2, 3)), dout.sum(axis=(0, 2, 3))
