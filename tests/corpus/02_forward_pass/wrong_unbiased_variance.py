# expect: test_normalizes = unbiased variance
# expect: test_torch = unbiased variance
# expect: test_keras = unbiased variance
# expect: test_eps = unbiased variance
# expect: test_large_mean = unbiased variance
# expect: test_spatial = unbiased variance
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    var = x.var(axis=0, ddof=1)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, var)
