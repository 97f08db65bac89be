# expect: test_gn_forward = GN with one group per channel (that is IN)
# expect: test_gn_backward = GN with one group per channel (that is IN)
# @edit groupnorm_forward
# old: 'xg = x.reshape(n, G, -1)'
# new: 'xg = x.reshape(n, c, -1)'
# old: 'return out, (x_hat, inv, gamma, G)'
# new: 'return out, (x_hat, inv, gamma, c)'
