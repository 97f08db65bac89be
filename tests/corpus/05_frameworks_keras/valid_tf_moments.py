# expect: full
# @edit layer
# old: '        if training:\n            mean = keras.ops.mean(x, axis=self._reduce)\n            var = keras.ops.var(x, axis=self._reduce)\n'
# new: '        if training:\n            mean, var = tf.nn.moments(x, axes=self._reduce)\n'
