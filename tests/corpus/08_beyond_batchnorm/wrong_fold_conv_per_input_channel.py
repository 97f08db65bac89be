# expect: test_fold_conv = conv weights scaled per input channel
# Right for a dense layer; for a convolution the scale is broadcast along axis 1 (C_in).
# @edit fold_batchnorm
# old: 'W_folded = W * scale.reshape(-1, *([1] * (W.ndim - 1)))'
# new: 'W_folded = W * scale[:, None] if W.ndim == 2 else W * scale.reshape(1, -1, 1, 1)'
