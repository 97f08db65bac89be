# expect: test_torch = eps outside the square root
# expect: test_keras = eps outside the square root
# expect: test_eps = eps outside the square root
# expect: test_spatial = eps outside the square root
# expect: test_large_mean = eps outside the square root
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    x_hat = (x - mu) / (np.sqrt(var) + eps)
    return gamma * x_hat + beta, (x_hat, var)
