"""Generated *correct* implementations, in the styles learners actually write.

Each exercise is a template with slots; each slot has several interchangeable, correct ways of
writing that step (NumPy's `var` or a manual two-pass, keepdims or not, an in-place running update
or a rebinding one, a cache that is a tuple, a dict, a namedtuple or an object, a forward that
returns a view of an internal buffer, `train(mode)`, `__call__` aliases, extra non-persistent
buffers, `keras.ops` or `tf` ops, ...). The cartesian product of the slots is large; `programs()`
draws a fixed, seeded sample of distinct programs from it, so a run is reproducible and every
program is a different combination. Every program must earn full marks: a failure is a false
negative of the grader (or a wrong slot here, which the test output names).
"""

from __future__ import annotations

import itertools
import random
import textwrap
from collections.abc import Iterator

# ----------------------------------------------------------------------------- 02 / 03 forward
# Every forward keeps, in its cache, x_hat, xc (x - mean), inv (1 / sqrt(var + eps)) and gamma.
MEANS = {
    "mean": "x.mean(axis=0{kd})",
    "np.mean": "np.mean(x, axis=0{kd})",
    "sum/n": "x.sum(axis=0{kd}) / x.shape[0]",
    "einsum": "np.einsum('nd->d', x) / len(x)",
}
VARS = {
    "var": "x.var(axis=0{kd})",
    "np.var": "np.var(x, axis=0{kd})",
    "two-pass": "(xc ** 2).mean(axis=0{kd})",
    "std**2": "np.std(x, axis=0{kd}) ** 2",
    "einsum": "np.einsum('nd,nd->d', xc, xc) / x.shape[0]",
    "square-sum": "np.square(xc).sum(axis=0{kd}) / len(x)",
}
INVS = {
    "1/sqrt": "1 / np.sqrt(var + eps)",
    "pow": "(var + eps) ** -0.5",
    "reciprocal": "np.reciprocal(np.sqrt(var + eps))",
}
OUTS = {
    "gamma*x_hat": "out = gamma * x_hat + beta",
    "x_hat*gamma": "out = x_hat * gamma + beta",
    "ufuncs": "out = np.add(np.multiply(x_hat, gamma), beta)",
    "in place": "out = x_hat * gamma\n    out += beta",
}
PRECISIONS = ("native", "float64 then cast back")
CACHES = {
    "tuple": (
        "",
        "cache = (x_hat, xc, inv, gamma)",
        "x_hat, xc, inv, gamma = cache",
    ),
    "dict": (
        "",
        "cache = {'x_hat': x_hat, 'xc': xc, 'inv': inv, 'gamma': gamma}",
        "x_hat, xc, inv, gamma = cache['x_hat'], cache['xc'], cache['inv'], cache['gamma']",
    ),
    "namedtuple": (
        "from collections import namedtuple\n\nCache = namedtuple('Cache', 'x_hat xc inv gamma')\n",
        "cache = Cache(x_hat, xc, inv, gamma)",
        "x_hat, xc, inv, gamma = cache.x_hat, cache.xc, cache.inv, cache.gamma",
    ),
    "object": (
        "from types import SimpleNamespace\n",
        "cache = SimpleNamespace(x_hat=x_hat, xc=xc, inv=inv, gamma=gamma)",
        "x_hat, xc, inv, gamma = cache.x_hat, cache.xc, cache.inv, cache.gamma",
    ),
    "class": (
        "class Cache:\n    def __init__(self, **parts):\n        self.__dict__.update(parts)\n",
        "cache = Cache(x_hat=x_hat, xc=xc, inv=inv, gamma=gamma)",
        "x_hat, xc, inv, gamma = cache.x_hat, cache.xc, cache.inv, cache.gamma",
    ),
}


def forward_cell(mean, var, inv, out, precision, cache, keepdims) -> str:
    kd = ", keepdims=True" if keepdims else ""
    head, pack, _ = CACHES[cache]
    cast_in = (
        "    dtype = x.dtype\n    x = x.astype(np.float64)\n" if precision != "native" else ""
    )
    cast_out = "    out = out.astype(dtype)\n" if precision != "native" else ""
    return (
        f"{head}\n\ndef batchnorm_forward(x, gamma, beta, eps=1e-5):\n{cast_in}"
        f"    mu = {MEANS[mean].format(kd=kd)}\n"
        "    xc = x - mu\n"
        f"    var = {VARS[var].format(kd=kd)}\n"
        f"    inv = {INVS[inv]}\n"
        "    x_hat = xc * inv\n"
        f"    {OUTS[out]}\n{cast_out}"
        f"    {pack}\n"
        "    return out, cache\n"
    )


def _forward_slots():
    for mean, var, inv, out, precision, cache, kd in itertools.product(
        MEANS, VARS, INVS, OUTS, PRECISIONS, CACHES, (False, True)
    ):
        if kd and "einsum" in (mean, var):
            continue  # einsum has no keepdims: not a combination a learner writes
        yield (mean, var, inv, out, precision, cache, kd)


SPATIAL_FORWARD = {
    "transpose+reuse": """
def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(flat, gamma, beta, eps)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape)
""",
    "moveaxis+reuse": """
def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5):
    c = x.shape[1]
    moved = np.moveaxis(x, 1, -1)
    out, cache = batchnorm_forward(moved.reshape(-1, c), gamma, beta, eps)
    return np.moveaxis(out.reshape(moved.shape), -1, 1), {"inner": cache, "shape": moved.shape}
""",
    "direct over (0, 2, 3)": """
def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=(0, 2, 3), keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    x_hat = xc * inv
    g = gamma.reshape(1, -1, 1, 1)
    return g * x_hat + beta.reshape(1, -1, 1, 1), (x_hat, inv, g)
""",
}
SPATIAL_BACKWARD = {
    "transpose+reuse": """
def spatial_batchnorm_backward(dout, cache):
    inner, (n, c, h, w) = cache
    flat = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_fast(flat, inner)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta
""",
    "moveaxis+reuse": """
def spatial_batchnorm_backward(dout, cache):
    shape = cache["shape"]
    flat = np.moveaxis(dout, 1, -1).reshape(-1, shape[-1])
    dx, dgamma, dbeta = batchnorm_backward(flat, cache["inner"])
    return np.moveaxis(dx.reshape(shape), -1, 1), dgamma, dbeta
""",
    "direct over (0, 2, 3)": """
def spatial_batchnorm_backward(dout, cache):
    x_hat, inv, g = cache
    axes = (0, 2, 3)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    dx = g * inv * (
        dout
        - dout.mean(axis=axes, keepdims=True)
        - x_hat * (dout * x_hat).mean(axis=axes, keepdims=True)
    )
    return dx, dgamma, dbeta
""",
}

DBETAS = {
    "sum": "dbeta = dout.sum(axis=0)",
    "np.sum": "dbeta = np.sum(dout, axis=0)",
    "einsum": "dbeta = np.einsum('nd->d', dout)",
}
DGAMMAS = {
    "sum": "dgamma = (dout * x_hat).sum(axis=0)",
    "einsum": "dgamma = np.einsum('nd,nd->d', dout, x_hat)",
    "np.sum": "dgamma = np.sum(x_hat * dout, axis=0)",
}
STAGED = {
    "with dvar term in dmu": """
    dx_hat = dout * gamma
    dvar = np.sum(dx_hat * xc, axis=0) * -0.5 * inv ** 3
    dmu = -np.sum(dx_hat * inv, axis=0) + dvar * -2.0 * xc.mean(axis=0)
    dx = dx_hat * inv + dvar * 2.0 * xc / n + dmu / n
""",
    "dvar term dropped (mean of xc is 0)": """
    dx_hat = dout * gamma
    dvar = (dx_hat * xc).sum(axis=0) * -0.5 * inv ** 3
    dmu = -(dx_hat * inv).sum(axis=0)
    dx = dx_hat * inv + 2.0 * dvar * xc / n + dmu / n
""",
    "via x_hat": """
    dx_hat = dout * gamma
    dx = inv / n * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
""",
}
CLOSED = {
    "n * dout": "dx = gamma * inv / n * (n * dout - dbeta - x_hat * dgamma)",
    "means": "dx = gamma * inv * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))",
    "parenthesised": "dx = (gamma * inv) * (dout - (dbeta + x_hat * dgamma) / n)",
}


def _backward(name, body, dbeta, dgamma, cache, cast) -> str:
    unpack = CACHES[cache][2]
    cast_line = "    dx = dx.astype(dout.dtype)\n" if cast else ""
    return (
        f"def {name}(dout, cache):\n    {unpack}\n    n = dout.shape[0]\n"
        f"    {DBETAS[dbeta]}\n    {DGAMMAS[dgamma]}\n"
        f"{textwrap.indent(textwrap.dedent(body).strip(), '    ')}\n"
        f"{cast_line}    return dx, dgamma, dbeta\n"
    )


def _sample(slots, n: int, seed: int) -> list:
    slots = list(slots)
    return random.Random(seed).sample(slots, min(n, len(slots)))


def forward_programs(n: int) -> Iterator[tuple[str, dict[str, str]]]:
    """Exercise 02: batchnorm_forward and spatial_batchnorm_forward."""
    spatial = list(SPATIAL_FORWARD)
    for i, slots in enumerate(_sample(_forward_slots(), n, 2)):
        sp = spatial[i % len(spatial)]
        yield (
            " / ".join(map(str, (*slots, sp))),
            {
                "batchnorm_forward": forward_cell(*slots),
                "spatial_batchnorm_forward": SPATIAL_FORWARD[sp],
            },
        )


def _backward_slots():
    return (
        (*fwd, staged, closed, dbeta, dgamma)
        for fwd in _forward_slots()
        for staged, closed, dbeta, dgamma in itertools.product(STAGED, CLOSED, DBETAS, DGAMMAS)
        if not fwd[6]  # the backward formulas assume (D,) statistics; keepdims is forward's
    )


def backward_programs(n: int) -> Iterator[tuple[str, dict[str, str]]]:
    """Exercise 03: forward with its own cache, staged and closed-form backward, spatial."""
    spatial = list(SPATIAL_FORWARD)
    for i, slots in enumerate(_sample(_backward_slots(), n, 3)):
        *fwd, staged, closed, dbeta, dgamma = slots
        cache, cast = fwd[5], fwd[4] != "native"
        sp = spatial[i % len(spatial)]
        yield (
            " / ".join(map(str, (*slots, sp))),
            {
                "batchnorm_forward": forward_cell(*fwd),
                "batchnorm_backward": _backward(
                    "batchnorm_backward", STAGED[staged], dbeta, dgamma, cache, cast
                ),
                "batchnorm_backward_fast": _backward(
                    "batchnorm_backward_fast", CLOSED[closed], dbeta, dgamma, cache, cast
                ),
                "spatial_batchnorm_forward": SPATIAL_FORWARD[sp],
                "spatial_batchnorm_backward": SPATIAL_BACKWARD[sp],
            },
        )


# ----------------------------------------------------------------------------- 04 BatchNorm1d
RUNNING_UPDATES = {
    "rebind": (
        "self.running_mean = (1 - m) * self.running_mean + m * mu\n"
        "self.running_var = (1 - m) * self.running_var + m * unbiased"
    ),
    "in place *= +=": (
        "self.running_mean *= 1 - m\nself.running_mean += m * mu\n"
        "self.running_var *= 1 - m\nself.running_var += m * unbiased"
    ),
    "lerp style": (
        "self.running_mean += m * (mu - self.running_mean)\n"
        "self.running_var += m * (unbiased - self.running_var)"
    ),
    "ufunc out=": (
        "np.multiply(self.running_mean, 1 - m, out=self.running_mean)\n"
        "np.add(self.running_mean, m * mu, out=self.running_mean)\n"
        "np.multiply(self.running_var, 1 - m, out=self.running_var)\n"
        "np.add(self.running_var, m * unbiased, out=self.running_var)"
    ),
    "slice assign": (
        "self.running_mean[:] = (1 - m) * self.running_mean + m * mu\n"
        "self.running_var[...] = (1 - m) * self.running_var + m * unbiased"
    ),
}
UNBIASED = {
    "var*n/(n-1)": "var * n / (n - 1)",
    "ddof=1": "x.var(axis=0, ddof=1)",
    "np.var ddof": "np.var(x, axis=0, ddof=1)",
    "manual": "(xc ** 2).sum(axis=0) / (n - 1)",
}
MODES = {
    "two methods": (
        "",
        "    def train(self):\n        self.training = True\n        return self\n\n"
        "    def eval(self):\n        self.training = False\n        return self\n",
    ),
    "train(mode)": (
        "",
        "    def train(self, mode=True):\n        self.training = bool(mode)\n        return self\n\n"
        "    def eval(self):\n        return self.train(False)\n",
    ),
    "property": (
        "",
        "    @property\n    def training(self):\n        return self._mode == 'train'\n\n"
        "    @training.setter\n    def training(self, value):\n"
        "        self._mode = 'train' if value else 'eval'\n\n"
        "    def train(self, mode=True):\n        self.training = mode\n        return self\n\n"
        "    def eval(self):\n        self.training = False\n        return self\n",
    ),
}
OUTPUT_BUFFERS = ("fresh array", "reused internal buffer")
CALL_ALIASES = {
    "none": "",
    "__call__ = forward": "    __call__ = forward\n",
    "def __call__": "    def __call__(self, x):\n        return self.forward(x)\n",
}
LAYER_CACHES = ("tuple", "dict", "lazy attributes")
EVAL_NORMS = {
    "divide": "(x - self.running_mean) / np.sqrt(self.running_var + self.eps)",
    "multiply": "(x - self.running_mean) * (self.running_var + self.eps) ** -0.5",
}


def layer_cell(update, unbiased, mode, buffer, alias, cache, eval_norm, closed) -> str:
    store = {
        "tuple": "self._cache = (x_hat, inv)",
        "dict": "self._cache = {'x_hat': x_hat, 'inv': inv}",
        "lazy attributes": "self.x_hat, self.inv = x_hat, inv",
    }[cache]
    load = {
        "tuple": "x_hat, inv = self._cache",
        "dict": "x_hat, inv = self._cache['x_hat'], self._cache['inv']",
        "lazy attributes": "x_hat, inv = self.x_hat, self.inv",
    }[cache]
    if buffer == "fresh array":
        emit = "return self.gamma * y + self.beta"
    else:  # the same array handed out again on the next call, overwritten in place
        emit = (
            "if getattr(self, '_out', None) is None or self._out.shape != y.shape:\n"
            "    self._out = np.empty(y.shape)\n"
            "np.multiply(y, self.gamma, out=self._out)\n"
            "self._out += self.beta\n"
            "return self._out"
        )
    dx = CLOSED[closed]
    init_mode = (
        "        self._mode = 'train'\n"
        if mode == "property"
        else "        self.training = True\n"
    )
    cache_init = "" if cache == "lazy attributes" else "        self._cache = None\n"
    return (
        "class BatchNorm1d:\n"
        "    def __init__(self, num_features, eps=1e-5, momentum=0.1):\n"
        "        self.num_features, self.eps, self.momentum = num_features, eps, momentum\n"
        "        self.gamma = np.ones(num_features)\n"
        "        self.beta = np.zeros(num_features)\n"
        "        self.running_mean = np.zeros(num_features)\n"
        "        self.running_var = np.ones(num_features)\n"
        f"{init_mode}{cache_init}\n"
        f"{MODES[mode][1]}\n"
        "    def forward(self, x):\n"
        "        if not self.training:\n"
        f"            y = {EVAL_NORMS[eval_norm]}\n"
        f"{textwrap.indent(emit, ' ' * 12)}\n"
        "        n = x.shape[0]\n"
        "        mu = x.mean(axis=0)\n"
        "        xc = x - mu\n"
        "        var = (xc * xc).mean(axis=0)\n"
        f"        unbiased = {UNBIASED[unbiased]}\n"
        "        m = self.momentum\n"
        f"{textwrap.indent(RUNNING_UPDATES[update], ' ' * 8)}\n"
        "        inv = 1.0 / np.sqrt(var + self.eps)\n"
        "        x_hat = xc * inv\n"
        f"        {store}\n"
        "        y = x_hat\n"
        f"{textwrap.indent(emit, ' ' * 8)}\n\n"
        f"{CALL_ALIASES[alias]}\n"
        "    def backward(self, dout):\n"
        f"        {load}\n"
        "        n = dout.shape[0]\n"
        "        gamma = self.gamma\n"
        "        self.dbeta = dbeta = dout.sum(axis=0)\n"
        "        self.dgamma = dgamma = (dout * x_hat).sum(axis=0)\n"
        f"        {dx}\n"
        "        return dx\n"
    )


def _layer_slots():
    return itertools.product(
        RUNNING_UPDATES,
        UNBIASED,
        MODES,
        OUTPUT_BUFFERS,
        CALL_ALIASES,
        LAYER_CACHES,
        EVAL_NORMS,
        CLOSED,
    )


def layer_programs(n: int) -> Iterator[tuple[str, dict[str, str]]]:
    """Exercise 04: the NumPy BatchNorm1d class."""
    for combo in _sample(_layer_slots(), n, 4):
        yield " / ".join(combo), {"BatchNorm1d": layer_cell(*combo)}


# ----------------------------------------------------------------------------- 05 PyTorch
TORCH_UPDATES = {
    "mul_/add_": (
        "self.running_mean.mul_(1 - f).add_(f * mean)\nself.running_var.mul_(1 - f).add_(f * var)"
    ),
    "lerp_": "self.running_mean.lerp_(mean, f)\nself.running_var.lerp_(var, f)",
    "*= +=": (
        "self.running_mean *= 1 - f\nself.running_mean += f * mean\n"
        "self.running_var *= 1 - f\nself.running_var += f * var"
    ),
    "copy_": (
        "self.running_mean.copy_((1 - f) * self.running_mean + f * mean)\n"
        "self.running_var.copy_((1 - f) * self.running_var + f * var)"
    ),
    "rebind the buffer": (
        "self.running_mean = (1 - f) * self.running_mean + f * mean\n"
        "self.running_var = (1 - f) * self.running_var + f * var"
    ),
}
TORCH_VARS = {
    "biased*n/(n-1)": "x.var(dim=dims, unbiased=False) * n / max(n - 1, 1)",
    "correction=1": "x.var(dim=dims, correction=1)",
    "var_mean": "torch.var_mean(x, dim=dims, correction=1)[0]",
    "manual": "((x - x.mean(dim=dims, keepdim=True)) ** 2).sum(dim=dims) / (n - 1)",
}
TORCH_EVALS = {
    "rsqrt": "(x - self.running_mean.view(shape)) * torch.rsqrt(self.running_var.view(shape) + self.eps)",
    "divide": "(x - self.running_mean.view(shape)) / torch.sqrt(self.running_var.view(shape) + self.eps)",
    "reshape": "(x - self.running_mean.reshape(shape)) / (self.running_var.reshape(shape) + self.eps).sqrt()",
}
EXTRA_BUFFER = ("no extra buffer", "extra non-persistent buffer")


def torch_modules_cell(update, var, evaluate, extra) -> str:
    extra_init = (
        "        self.register_buffer('_seen', torch.zeros((), dtype=torch.long), persistent=False)\n"
        if extra != "no extra buffer"
        else ""
    )
    extra_step = "        self._seen += 1\n" if extra != "no extra buffer" else ""
    return f"""
class _BatchNorm(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__()
        kw = {{"device": device, "dtype": dtype}}
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **kw))
            self.bias = nn.Parameter(torch.zeros(num_features, **kw))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kw))
            self.register_buffer("running_var", torch.ones(num_features, **kw))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
{extra_init}
    def forward(self, x):
        self._check_input_dim(x)
        c = self.num_features
        shape = [1, -1] + [1] * (x.dim() - 2)
        weight = self.weight if self.affine else torch.ones(c, dtype=x.dtype, device=x.device)
        bias = self.bias if self.affine else torch.zeros(c, dtype=x.dtype, device=x.device)
        if self.training or not self.track_running_stats:
            if self.training and self.track_running_stats:
                self._update(x)
            return BatchNormFunction.apply(x, weight, bias, self.eps)
        return {TORCH_EVALS[evaluate]} * weight.view(shape) + bias.view(shape)

    @torch.no_grad()
    def _update(self, x):
        dims = [d for d in range(x.dim()) if d != 1]
        n = x.numel() // x.shape[1]
        self.num_batches_tracked += 1
{extra_step}        f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        mean = x.mean(dim=dims)
        var = {TORCH_VARS[var]}
{textwrap.indent(TORCH_UPDATES[update], " " * 8)}


class BatchNorm1d(_BatchNorm):
    def _check_input_dim(self, x):
        if x.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {{x.dim()}}D input)")


class BatchNorm2d(_BatchNorm):
    def _check_input_dim(self, x):
        if x.dim() != 4:
            raise ValueError(f"expected 4D input (got {{x.dim()}}D input)")
"""


TORCH_SAVES = {
    "x_hat and inv_std": (
        "ctx.save_for_backward(x_hat, inv_std, weight)",
        "x_hat, inv_std, weight = ctx.saved_tensors",
    ),
    "x, recomputed": (
        "ctx.save_for_backward(x, weight)\n        ctx.eps = eps",
        "x, weight = ctx.saved_tensors\n"
        "        mean = x.mean(dim=dims, keepdim=True)\n"
        "        inv_std = (x.var(dim=dims, unbiased=False, keepdim=True) + ctx.eps).rsqrt()\n"
        "        x_hat = (x - mean) * inv_std",
    ),
}
TORCH_DX = {
    "n * grad": "dx = weight.view(shape) * inv_std / m * (m * g - dbias.view(shape) - x_hat * dweight.view(shape))",
    "means": (
        "dx = weight.view(shape) * inv_std * (g - g.mean(dim=dims, keepdim=True)"
        " - x_hat * (g * x_hat).mean(dim=dims, keepdim=True))"
    ),
}


def torch_function_cell(save, dx) -> str:
    keep, load = TORCH_SAVES[save]
    return f"""
class BatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        mean = x.mean(dim=dims, keepdim=True)
        inv_std = torch.rsqrt(x.var(dim=dims, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mean) * inv_std
        {keep}
        ctx.dims = dims
        return x_hat * weight.view(shape) + bias.view(shape)

    @staticmethod
    def backward(ctx, g):
        dims = ctx.dims
        shape = [1, -1] + [1] * (g.dim() - 2)
        m = g.numel() // g.shape[1]
        {load}
        dbias = g.sum(dim=dims)
        dweight = (g * x_hat).sum(dim=dims)
        {TORCH_DX[dx]}
        return dx, dweight, dbias, None
"""


def _torch_slots():
    return itertools.product(TORCH_UPDATES, TORCH_VARS, TORCH_EVALS, EXTRA_BUFFER)


def torch_programs(n: int) -> Iterator[tuple[str, dict[str, str]]]:
    functions = list(itertools.product(TORCH_SAVES, TORCH_DX))
    modules = _sample(_torch_slots(), n, 5)
    for i, combo in enumerate(modules):
        fn = functions[i % len(functions)]
        yield (
            " / ".join((*fn, *combo)),
            {"BatchNormFunction": torch_function_cell(*fn), "modules": torch_modules_cell(*combo)},
        )


# ----------------------------------------------------------------------------- 05 Keras
KERAS_STATS = {
    "keras.ops": "mean = keras.ops.mean(x, axis=self._reduce)\n"
    "var = keras.ops.var(x, axis=self._reduce)",
    "tf.nn.moments": "mean, var = tf.nn.moments(x, axes=self._reduce)",
    "manual": "mean = keras.ops.mean(x, axis=self._reduce)\n"
    "var = keras.ops.mean(keras.ops.square(x - keras.ops.reshape(mean, self._bshape)), axis=self._reduce)",
}
KERAS_UPDATES = {
    "assign": "self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)\n"
    "self.moving_variance.assign(m * self.moving_variance + (1 - m) * var)",
    "assign_sub": "self.moving_mean.assign_sub((1 - m) * (self.moving_mean - mean))\n"
    "self.moving_variance.assign_sub((1 - m) * (self.moving_variance - var))",
    "assign_add": "self.moving_mean.assign_add((1 - m) * (mean - self.moving_mean))\n"
    "self.moving_variance.assign_add((1 - m) * (var - self.moving_variance))",
}
KERAS_NORMS = {
    "divide": "out = (x - mean) / keras.ops.sqrt(var + self.epsilon)",
    "rsqrt": "out = (x - mean) * keras.ops.rsqrt(var + self.epsilon)",
    "tf": "out = (x - mean) * tf.math.rsqrt(var + self.epsilon)",
}


def keras_cell(stats, update, norm) -> str:
    return f"""
class BatchNormalization(keras.layers.Layer):
    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.momentum, self.epsilon = axis, momentum, epsilon
        self.center, self.scale = center, scale

    def build(self, input_shape):
        axis = self.axis % len(input_shape)
        shape = (input_shape[axis],)
        if self.scale:
            self.gamma = self.add_weight(shape=shape, initializer="ones", name="gamma")
        if self.center:
            self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=shape, initializer="zeros", name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape=shape, initializer="ones", name="moving_variance", trainable=False)
        self._reduce = [i for i in range(len(input_shape)) if i != axis]
        self._bshape = [1] * len(input_shape)
        self._bshape[axis] = input_shape[axis]

    def call(self, inputs, training=None):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if training:
{textwrap.indent(KERAS_STATS[stats], " " * 12)}
            m = self.momentum
{textwrap.indent(KERAS_UPDATES[update], " " * 12)}
        else:
            mean, var = self.moving_mean, self.moving_variance
        mean = keras.ops.reshape(mean, self._bshape)
        var = keras.ops.reshape(var, self._bshape)
        {KERAS_NORMS[norm]}
        if self.scale:
            out = out * keras.ops.reshape(self.gamma, self._bshape)
        if self.center:
            out = out + keras.ops.reshape(self.beta, self._bshape)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape
"""


def _keras_slots():
    return itertools.product(KERAS_STATS, KERAS_UPDATES, KERAS_NORMS)


def keras_programs(n: int) -> Iterator[tuple[str, dict[str, str]]]:
    for combo in _sample(_keras_slots(), n, 6):
        yield " / ".join(combo), {"layer": keras_cell(*combo)}


# ----------------------------------------------------------------------------- 10 SyncBatchNorm
# Correct ways to synchronize: the global statistics, the backward's two sums, the running
# update. Every program keeps the same signature; mean, var (biased), n (global count, a 0-dim
# or (1,) tensor) and x_hat come out of the statistics slot.
SYNC_STATS = {
    "one all-reduce of sums": """
stats = torch.cat([x.sum(dim=dims), (x * x).sum(dim=dims),
                   x.new_full((1,), x.numel() // x.shape[1])])
dist.all_reduce(stats, group=process_group)
c = x.shape[1]
n = stats[2 * c]
mean = stats[:c] / n
var = stats[c:2 * c] / n - mean ** 2""",
    "two passes": """
n = torch.tensor(float(x.numel() // x.shape[1]), dtype=x.dtype, device=x.device)
dist.all_reduce(n, group=process_group)
s = x.sum(dim=dims)
dist.all_reduce(s, group=process_group)
mean = s / n
sq = ((x - mean.view(shape)) ** 2).sum(dim=dims)
dist.all_reduce(sq, op=dist.ReduceOp.SUM, group=process_group)
var = sq / n""",
    "all_gather and Chan's formula": """
var_l, mean_l = torch.var_mean(x, dim=dims, correction=0)
n_l = x.new_tensor([x.numel() / x.shape[1]])
mine = torch.cat([mean_l, var_l, n_l])
parts = [torch.zeros_like(mine) for _ in range(dist.get_world_size(process_group))]
dist.all_gather(parts, mine, group=process_group)
c = x.shape[1]
n = sum(p[-1] for p in parts)
mean = sum(p[:c] * p[-1] for p in parts) / n
var = sum(p[-1] * (p[c:2 * c] + (p[:c] - mean) ** 2) for p in parts) / n""",
}
SYNC_BACKWARD = {
    "stacked sums": """
both = torch.stack([g.sum(dim=dims), (g * x_hat).sum(dim=dims)])
local = both.clone()
dist.all_reduce(both, group=ctx.group)
dx = (g - (both[0].view(shape) + x_hat * both[1].view(shape)) / n) * (weight * inv_std).view(shape)
return dx, local[1], local[0], None, None, None, None, None""",
    "two all-reduces, in place": """
dbias = g.sum(dim=dims)
dweight = (g * x_hat).sum(dim=dims)
a, b = dbias.clone(), dweight.clone()
dist.all_reduce(a, group=ctx.group)
dist.all_reduce(b, group=ctx.group)
dx = g.clone()
dx.sub_(a.view(shape) / n).sub_(x_hat * b.view(shape) / n).mul_((weight * inv_std).view(shape))
return dx, dweight, dbias, None, None, None, None, None""",
    "method chaining": """
sums = torch.cat([g.sum(dims), g.mul(x_hat).sum(dims)])
out = sums.clone()
dist.all_reduce(out, group=ctx.group)
c = g.shape[1]
dx = g.sub(out[:c].view(shape).div(n)).sub(x_hat.mul(out[c:].view(shape)).div(n))
return dx.mul(weight.mul(inv_std).view(shape)), sums[c:], sums[:c], None, None, None, None, None""",
}
SYNC_RUNNING = {
    "mul_ add_": """
running_mean.mul_(1 - momentum).add_(momentum * mean)
running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1))""",
    "lerp_": """
running_mean.lerp_(mean, momentum)
running_var.lerp_(var * n / (n - 1), momentum)""",
    "copy_": """
running_mean.copy_((1 - momentum) * running_mean + momentum * mean)
running_var.copy_((1 - momentum) * running_var + momentum * var * (n / (n - 1)))""",
}


def sync_function_cell(stats, backward, running) -> str:
    return f"""
class SyncBatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, process_group):
        dims = tuple(d for d in range(x.dim()) if d != 1)
        shape = (1, -1) + (1,) * (x.dim() - 2)
{textwrap.indent(SYNC_STATS[stats].strip(), " " * 8)}
        if running_mean is not None:
{textwrap.indent(SYNC_RUNNING[running].strip(), " " * 12)}
        inv_std = torch.rsqrt(var + eps)
        x_hat = (x - mean.view(shape)) * inv_std.view(shape)
        ctx.save_for_backward(x_hat, inv_std, weight, n)
        ctx.group = process_group
        return x_hat * weight.view(shape) + bias.view(shape)

    @staticmethod
    def backward(ctx, g):
        x_hat, inv_std, weight, n = ctx.saved_tensors
        dims = tuple(d for d in range(g.dim()) if d != 1)
        shape = (1, -1) + (1,) * (g.dim() - 2)
{textwrap.indent(SYNC_BACKWARD[backward].strip(), " " * 8)}
"""


def _sync_slots():
    return itertools.product(SYNC_STATS, SYNC_BACKWARD, SYNC_RUNNING)


def sync_programs(n: int) -> Iterator[tuple[str, dict[str, str]]]:
    for combo in _sample(_sync_slots(), n, 10):
        yield " / ".join(combo), {"SyncBatchNormFunction": sync_function_cell(*combo)}


GENERATORS = {
    "02_forward_pass": forward_programs,
    "03_backward_pass": backward_programs,
    "04_train_vs_inference": layer_programs,
    "05_frameworks_torch": torch_programs,
    "05_frameworks_keras": keras_programs,
    "10_batchnorm_at_scale": sync_programs,
}


SPACES = {
    "02_forward_pass": _forward_slots,
    "03_backward_pass": _backward_slots,
    "04_train_vs_inference": _layer_slots,
    "05_frameworks_torch": _torch_slots,
    "05_frameworks_keras": _keras_slots,
    "10_batchnorm_at_scale": _sync_slots,
}


def space_size(stem: str) -> int:
    """How many distinct slot combinations an exercise has (programs are drawn from these)."""
    return sum(1 for _ in SPACES[stem]())
