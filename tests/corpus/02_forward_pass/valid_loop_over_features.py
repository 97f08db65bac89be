# expect: full
# @cell batchnorm_forward
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        col = x[:, j]
        m = sum(col) / len(col)
        v = sum((col - m) ** 2) / len(col)
        out[:, j] = gamma[j] * (col - m) / (v + eps) ** 0.5 + beta[j]
    return out, None
