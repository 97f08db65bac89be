# expect: test_renorm_backward = Batch Renorm with d not detached
# r held constant, but d = (mu_B - running_mean) / sigma differentiated as a function of x:
# d(d)/dx = 1 / (N sigma), with sigma = sigma_B / r. That term cancels the path through mu_B.
# @cell batchrenorm_backward
def batchrenorm_backward(dout, x, gamma, r, d, eps=1e-5):
    n = x.shape[0]
    mu = x.mean(axis=0)
    sigma_b = np.sqrt(x.var(axis=0) + eps)
    sigma = sigma_b / r
    x_hat = (x - mu) / sigma_b
    dx = gamma * r / sigma_b * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))
    dx += gamma * dout.sum(axis=0) / (n * sigma)  # the gradient through d
    return dx, (dout * (x_hat * r + d)).sum(axis=0), dout.sum(axis=0)
