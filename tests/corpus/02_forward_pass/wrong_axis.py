# expect: test_normalizes = statistics over the wrong axis
# expect: test_torch = statistics over the wrong axis
# expect: test_keras = statistics over the wrong axis
# expect: test_eps = statistics over the wrong axis
# expect: test_large_mean = statistics over the wrong axis
# expect: test_spatial = spatial statistics over channels per location
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    # statistics over the features of each sample (LayerNorm), not over the batch
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, x_hat
