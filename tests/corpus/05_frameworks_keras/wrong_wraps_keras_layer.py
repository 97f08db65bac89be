# expect: test_train = wraps the framework's batch norm
# expect: test_inference = wraps the framework's batch norm
# expect: test_weights = wraps the framework's batch norm
# expect: test_axis = wraps the framework's batch norm
# expect: test_fit = wraps the framework's batch norm
# @cell layer
class BatchNormalization(keras.layers.Layer):
    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kw):
        super().__init__(**kw)
        self.inner = keras.layers.BatchNormalization(
            axis=axis, momentum=momentum, epsilon=epsilon, center=center, scale=scale
        )

    def build(self, input_shape):
        self.inner.build(input_shape)

    def call(self, inputs, training=None):
        return self.inner(inputs, training=training)
