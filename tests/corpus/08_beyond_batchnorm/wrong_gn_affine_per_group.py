# expect: test_gn_affine = GN affine per group instead of per channel
# The scale and shift applied on the grouped tensor, one per group (gamma[:G]).
# @edit groupnorm_forward
# old: 'out = gamma.reshape(1, c, 1, 1) * x_hat + beta.reshape(1, c, 1, 1)'
# new: 'out = ((xc * inv) * gamma[:G].reshape(1, G, 1) + beta[:G].reshape(1, G, 1)).reshape(x.shape)'
