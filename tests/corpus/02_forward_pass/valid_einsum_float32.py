# expect: full
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    mu = np.einsum("nd->d", x) / n
    centred = x - mu
    var = np.einsum("nd,nd->d", centred, centred) / n
    std = np.sqrt(var + np.asarray(eps, dtype=x.dtype))
    out = (centred / std) * gamma + beta
    return out.astype(x.dtype, copy=False), (centred, std, gamma)
