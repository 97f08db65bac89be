# expect: test_normalizes = gamma and beta swapped
# expect: test_affine = gamma and beta swapped
# expect: test_torch = gamma and beta swapped
# expect: test_keras = gamma and beta swapped
# expect: test_eps = gamma and beta swapped
# expect: test_large_mean = gamma and beta swapped
# expect: test_spatial = gamma and beta swapped
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)
    return beta * x_hat + gamma, x_hat
