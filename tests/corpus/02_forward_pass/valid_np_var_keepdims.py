# expect: full
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mean = np.mean(x, axis=0, keepdims=True)
    var = np.var(x, axis=0, keepdims=True)
    out = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return out, {"x": x, "mean": mean, "var": var}


# @cell spatial_batchnorm_forward
def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    g, b = gamma.reshape(1, -1, 1, 1), beta.reshape(1, -1, 1, 1)
    return g * (x - mean) / np.sqrt(var + eps) + b, (x, mean, var)
