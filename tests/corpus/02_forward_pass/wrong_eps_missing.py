# expect: test_torch = eps missing
# expect: test_keras = eps missing
# expect: test_eps = eps missing
# expect: test_large_mean = eps missing
# expect: test_spatial = eps missing
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    x_hat = (x - mu) / x.std(axis=0)
    return gamma * x_hat + beta, x_hat
