"""Reference batch normalization computed by the real framework layers.

The grader and the learner checks compare against these; nothing here re-implements BN by hand.
All functions take and return NumPy arrays and compute in float64.
"""

from __future__ import annotations

import numpy as np

from bnlab.core.frameworks import import_keras, import_torch, quiet_stderr
from bnlab.core.refcache import cached


@cached
def torch_batchnorm_train(x, gamma, beta, eps=1e-5):
    """Training-mode BN of ``x`` (N, D) or (N, C, H, W) by ``torch.nn.functional.batch_norm``."""
    torch = import_torch()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
    out = torch.nn.functional.batch_norm(
        xt,
        running_mean=None,
        running_var=None,
        weight=torch.as_tensor(np.asarray(gamma, dtype=np.float64)),
        bias=torch.as_tensor(np.asarray(beta, dtype=np.float64)),
        training=True,
        eps=float(eps),
    )
    return out.numpy()


@cached
def torch_batchnorm1d_train(x, gamma, beta, eps=1e-5):
    """The same through the module ``torch.nn.BatchNorm1d`` in train mode."""
    torch = import_torch()
    x = np.asarray(x, dtype=np.float64)
    layer = torch.nn.BatchNorm1d(x.shape[1], eps=float(eps), momentum=0.1, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(np.asarray(gamma, dtype=np.float64)))
        layer.bias.copy_(torch.as_tensor(np.asarray(beta, dtype=np.float64)))
    layer.train()
    with torch.no_grad():
        return layer(torch.as_tensor(x)).numpy()


@cached
def keras_batchnorm_train(x, gamma, beta, eps=1e-3, axis=-1):
    """Training-mode BN by ``keras.layers.BatchNormalization`` (epsilon set explicitly)."""
    keras = import_keras()
    x = np.asarray(x, dtype=np.float64)
    with quiet_stderr():
        layer = keras.layers.BatchNormalization(
            axis=axis, momentum=0.99, epsilon=float(eps), dtype="float64"
        )
        layer.build(x.shape)
        layer.gamma.assign(np.asarray(gamma, dtype=np.float64))
        layer.beta.assign(np.asarray(beta, dtype=np.float64))
        out = layer(x, training=True)
        return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)
