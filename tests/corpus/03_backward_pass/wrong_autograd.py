# expect: test_fast = framework call
# expect: test_spatial = framework call
# @cell batchnorm_backward_fast
def batchnorm_backward_fast(dout, cache):
    import torch

    x_hat, xc, var, std, gamma, eps = cache
    x = torch.tensor(xc, requires_grad=True)
    g = torch.tensor(gamma, requires_grad=True)
    b = torch.zeros(len(gamma), dtype=x.dtype, requires_grad=True)
    out = torch.nn.functional.batch_norm(x, None, None, g, b, training=True, eps=eps)
    out.backward(torch.tensor(dout))
    return x.grad.numpy(), g.grad.numpy(), b.grad.numpy()
