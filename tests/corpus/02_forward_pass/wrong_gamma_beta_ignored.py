# expect: test_affine = gamma and beta ignored
# expect: test_torch = gamma and beta ignored
# expect: test_keras = gamma and beta ignored
# expect: test_eps = gamma and beta ignored
# expect: test_large_mean = gamma and beta ignored
# expect: test_spatial = gamma and beta ignored
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)
    return x_hat, x_hat
