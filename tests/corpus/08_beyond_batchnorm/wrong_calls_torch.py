# expect: test_ln_forward = framework call
# expect: test_ln_backward = framework call
# expect: test_gn_forward = framework call
# expect: test_gn_affine = framework call
# expect: test_gn_backward = framework call
# A hostile submission: LayerNorm and GroupNorm by torch's own layers, reached under other
# names; the backward passes by autograd.
# @cell layernorm_forward
import importlib

_F = importlib.import_module("torch.nn.functional")
_ln, _gn = getattr(_F, "layer" + "_norm"), getattr(_F, "group" + "_norm")


def layernorm_forward(x, gamma, beta, eps=1e-5):
    t = importlib.import_module("torch")
    xt = t.from_numpy(x).requires_grad_(True)
    g, b = t.from_numpy(gamma).requires_grad_(True), t.from_numpy(beta).requires_grad_(True)
    out = _ln(xt, (x.shape[1],), g, b, eps)
    return out.detach().numpy(), (out, xt, g, b)


# @cell layernorm_backward
def layernorm_backward(dout, cache):
    out, xt, g, b = cache
    t = importlib.import_module("torch")
    out.backward(t.from_numpy(dout))
    return xt.grad.numpy(), g.grad.numpy(), b.grad.numpy()


# @cell groupnorm_forward
def groupnorm_forward(x, gamma, beta, G, eps=1e-5):
    t = importlib.import_module("torch")
    xt = t.from_numpy(x).requires_grad_(True)
    g, b = t.from_numpy(gamma).requires_grad_(True), t.from_numpy(beta).requires_grad_(True)
    out = _gn(xt, G, g, b, eps)
    return out.detach().numpy(), (out, xt, g, b)


# @cell groupnorm_backward
def groupnorm_backward(dout, cache):
    return layernorm_backward(dout, cache)
