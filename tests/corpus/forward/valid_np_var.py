def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mean = np.mean(x, axis=0, keepdims=True)
    var = np.var(x, axis=0, keepdims=True)
    out = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return out, {"x": x, "mean": mean, "var": var}
