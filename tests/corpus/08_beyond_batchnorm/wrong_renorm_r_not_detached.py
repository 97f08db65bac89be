# expect: test_renorm_backward = Batch Renorm with r not detached
# r differentiated as a function of x: r = sigma_B / sigma (sigma = sigma_B / r, the running
# standard deviation), so x_hat * r = (x - mu_B) / sigma and only the path through mu_B is left;
# the path through the batch variance is gone.
# @cell batchrenorm_backward
def batchrenorm_backward(dout, x, gamma, r, d, eps=1e-5):
    mu = x.mean(axis=0)
    sigma_b = np.sqrt(x.var(axis=0) + eps)
    sigma = sigma_b / r
    x_hat = (x - mu) / sigma_b
    # out = gamma * ((x - mu) / sigma + d) + beta, differentiated through mu
    dx = gamma / sigma * (dout - dout.mean(axis=0))
    return dx, (dout * (x_hat * r + d)).sum(axis=0), dout.sum(axis=0)
