# expect: test_train = moving variance unbiased
# expect: test_axis = moving variance unbiased
# expect: test_inference = failed
# expect: test_fit = failed
# @cell layer
# Write BatchNormalization as a drop-in replacement of keras.layers.BatchNormalization:
# the constructor (axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs),
# weights created in build() with add_weight, named and ordered as Keras does: gamma, beta
# (trainable, left out when scale/center is False), moving_mean, moving_variance (not
# trainable), and call(inputs, training=None). In training, normalize with the batch
# statistics (biased variance) and update the moving averages with KERAS' convention:
# momentum weights the OLD value, and moving_variance stores the biased variance.
# training=False or omitted: normalize with the moving statistics.
# Use keras.ops / tf ops only: no keras.layers.BatchNormalization, no tf.nn.batch_normalization.
class BatchNormalization(keras.layers.Layer):
    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
        self.center = center
        self.scale = scale

    def build(self, input_shape):
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

    def call(self, inputs, training=None):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if training:
            mean = keras.ops.mean(x, axis=self._reduce)
            var = keras.ops.var(x, axis=self._reduce)
            n = float(np.prod([x.shape[i] for i in self._reduce]))
            unbiased = var * n / (n - 1)
            m = self.momentum
            self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)
            self.moving_variance.assign(m * self.moving_variance + (1 - m) * unbiased)
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

    def compute_output_shape(self, input_shape):
        return input_shape
