# expect: test_gn_forward = GN with G ignored (that is LN)
# expect: test_gn_backward = GN with G ignored (that is LN)
# @edit groupnorm_forward
# old: 'xg = x.reshape(n, G, -1)'
# new: 'xg = x.reshape(n, 1, -1)'
# old: 'return out, (x_hat, inv, gamma, G)'
# new: 'return out, (x_hat, inv, gamma, 1)'
