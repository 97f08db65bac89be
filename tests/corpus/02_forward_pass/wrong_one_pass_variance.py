# expect: test_large_mean = one-pass variance cancellation
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    var = (x * x).mean(axis=0) - mu * mu  # E[x^2] - E[x]^2: one pass
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, x_hat
