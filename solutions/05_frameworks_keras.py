# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 5b — BatchNorm in Keras 3 / TensorFlow
#
# Read the chapter *Batch normalization in PyTorch and Keras* first: its conventions table
# (Keras' momentum weights the old value, epsilon defaults to 1e-3, the moving variance is
# the biased one, a call without `training` runs in inference mode) and its section *Writing
# your own layer*, which shows `build`, `add_weight`, the `training` argument and
# `tf.custom_gradient` on other operations. You write a layer that can replace
# `keras.layers.BatchNormalization`, and the same normalization as a `tf.custom_gradient`
# with a hand-written gradient; the classes and functions are given, fill in the bodies. The
# tests compare both with the built-in layer; wrapping the built-in layer earns nothing for the parts it fakes.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}
# On Colab, or wherever this course's package `bnlab` is missing, install it first.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("bnlab") is None:
    BNLAB = "git+https://github.com/batchnorm-course/batchnorm-course"
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError(
            f'bnlab is not installed: pip install "bnlab[learner] @ {BNLAB}", then restart the kernel'
        )
    # Colab has numpy, matplotlib, torch and TensorFlow: add bnlab alone, changing none of them.
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", f"bnlab @ {BNLAB}"]
    subprocess.run(pip, check=True)
    importlib.invalidate_caches()

import numpy as np

from bnlab import checks
from bnlab.core.frameworks import import_keras

keras = import_keras()  # Keras 3 on TensorFlow, imported without TensorFlow's log noise
import tensorflow as tf  # noqa: E402

print(
    "keras",
    keras.__version__,
    "| GPUs visible to TensorFlow:",
    len(tf.config.list_physical_devices("GPU")),
)


# %% nbgrader={"grade": false, "grade_id": "layer", "locked": false, "schema_version": 3, "solution": true, "task": false}
class BatchNormalization(keras.layers.Layer):
    """Drop-in keras.layers.BatchNormalization (Keras 3), written with keras.ops / tf ops.

    No keras.layers.BatchNormalization and no tf.nn.batch_normalization inside.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        """Store the configuration; other keyword arguments (name, dtype...) go to Layer."""
        super().__init__(**kwargs)
        ### BEGIN SOLUTION
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        ### END SOLUTION

    def build(self, input_shape):
        """Create the weights with add_weight, named and ordered as Keras does, each (C,)
        with C = input_shape[axis]: gamma (ones), beta (zeros), both trainable and left
        out when scale / center is False; moving_mean (zeros), moving_variance (ones),
        both not trainable. A negative axis counts from the end."""
        ### BEGIN SOLUTION
        axis = self.axis % len(input_shape)
        shape = (input_shape[axis],)
        if self.scale:
            self.gamma = self.add_weight(shape=shape, initializer="ones", name="gamma")
        if self.center:
            self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(
            shape=shape, initializer="zeros", name="moving_mean", trainable=False
        )
        self.moving_variance = self.add_weight(
            shape=shape, initializer="ones", name="moving_variance", trainable=False
        )
        self._reduce = [i for i in range(len(input_shape)) if i != axis]
        self._bshape = [1] * len(input_shape)
        self._bshape[axis] = input_shape[axis]
        ### END SOLUTION

    def call(self, inputs, training=None):
        """inputs: any shape with the channels on self.axis -> the same shape.

        training=True: normalize with the batch statistics over every axis but self.axis
        (biased variance) and update the moving averages with KERAS' convention: momentum
        weights the OLD value; moving_variance stores the biased variance.
        training=False or None (omitted): normalize with the moving statistics.
        """
        ### BEGIN SOLUTION
        x = keras.ops.cast(inputs, self.compute_dtype)
        if training:
            mean = keras.ops.mean(x, axis=self._reduce)
            var = keras.ops.var(x, axis=self._reduce)
            m = self.momentum
            self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)
            self.moving_variance.assign(m * self.moving_variance + (1 - m) * var)
        else:
            mean, var = self.moving_mean, self.moving_variance
        mean = keras.ops.reshape(mean, self._bshape)
        var = keras.ops.reshape(var, self._bshape)
        out = (x - mean) / keras.ops.sqrt(var + self.epsilon)
        if self.scale:
            out = out * keras.ops.reshape(self.gamma, self._bshape)
        if self.center:
            out = out + keras.ops.reshape(self.beta, self._bshape)
        return out
        ### END SOLUTION

    def compute_output_shape(self, input_shape):
        return input_shape


# %% nbgrader={"grade": true, "grade_id": "test_train", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("keras.train", BatchNormalization)
### BEGIN HIDDEN TESTS
checks.check("keras.train", BatchNormalization, seed=51)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_inference", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("keras.inference", BatchNormalization)
### BEGIN HIDDEN TESTS
checks.check("keras.inference", BatchNormalization, seed=52)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_weights", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("keras.weights", BatchNormalization)
### BEGIN HIDDEN TESTS
checks.check("keras.weights", BatchNormalization, seed=53)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_axis", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("keras.axis", BatchNormalization)
### BEGIN HIDDEN TESTS
checks.check("keras.axis", BatchNormalization, seed=54)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_fit", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check("keras.fit", BatchNormalization)
### BEGIN HIDDEN TESTS
checks.check("keras.fit", BatchNormalization, seed=55)
### END HIDDEN TESTS

# %% [markdown]
# ## A hand-written gradient


# %% nbgrader={"grade": false, "grade_id": "custom_gradient", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchnorm_custom_gradient(x, gamma, beta, epsilon=1e-3):
    """Training-mode batch normalization over every axis but the last, with a hand-written
    gradient (the closed form of exercise 3).

    x: (..., C); gamma, beta: (C,); returns gamma * x_hat + beta, shape of x.
    """

    @tf.custom_gradient
    def bn(x, gamma, beta):
        """Returns (output, grad), where grad(dout) gives (dx, dgamma, dbeta)."""
        ### BEGIN SOLUTION
        axes = list(range(len(x.shape) - 1))
        mean, var = tf.nn.moments(x, axes=axes)
        inv_std = tf.math.rsqrt(var + epsilon)
        x_hat = (x - mean) * inv_std
        m = tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)

        def grad(dout):
            dbeta = tf.reduce_sum(dout, axis=axes)
            dgamma = tf.reduce_sum(dout * x_hat, axis=axes)
            dx = gamma * inv_std / m * (m * dout - dbeta - x_hat * dgamma)
            return dx, dgamma, dbeta

        return gamma * x_hat + beta, grad
        ### END SOLUTION

    return bn(x, gamma, beta)


# %% nbgrader={"grade": true, "grade_id": "test_custom_gradient", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check("keras.custom_gradient", batchnorm_custom_gradient)
### BEGIN HIDDEN TESTS
checks.check("keras.custom_gradient", batchnorm_custom_gradient, seed=56)
### END HIDDEN TESTS

# %% [markdown]
# ## Your layer in a real model
#
# The same small model on the 8x8 digits, trained with `fit`: with your layer, with Keras'
# and without normalization.

# %%
from bnlab.book.data import load_digits  # noqa: E402

data = load_digits(images=False)
curves = {}
for label, make_bn in {
    "your BatchNormalization": BatchNormalization,
    "keras BatchNormalization": keras.layers.BatchNormalization,
    "no normalization": None,
}.items():
    keras.utils.set_random_seed(0)
    layers = [keras.Input(shape=(64,)), keras.layers.Dense(64, use_bias=make_bn is None)]
    layers += [make_bn()] if make_bn else []
    layers += [keras.layers.Activation("relu"), keras.layers.Dense(10)]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        data.x_train,
        data.y_train,
        batch_size=64,
        epochs=4,
        verbose=0,
        validation_data=(data.x_test, data.y_test),
    )
    print(f"{label:25s} test accuracy per epoch:", np.round(history.history["val_accuracy"], 3))
    curves[label] = history.history["val_accuracy"]

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(5, 3))
for label, acc in curves.items():
    ax.plot(range(1, len(acc) + 1), acc, marker="o", label=label)
ax.set_xlabel("epoch")
ax.set_ylabel("validation accuracy")
ax.legend()
plt.show()
