# expect: test_train = moving variance unbiased
# expect: test_axis = moving variance unbiased
# expect: test_inference = failed
# expect: test_fit = failed
# @edit layer
# old: '            var = keras.ops.var(x, axis=self._reduce)\n'
# new: '            var = keras.ops.var(x, axis=self._reduce)\n            n = float(np.prod([x.shape[i] for i in self._reduce]))\n            unbiased = var * n / (n - 1)\n'
# old: 'self.moving_variance.assign(m * self.moving_variance + (1 - m) * var)'
# new: 'self.moving_variance.assign(m * self.moving_variance + (1 - m) * unbiased)'
