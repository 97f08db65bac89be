# expect: test_renorm_backward = Batch Renorm with r and d not detached
# Both differentiated: x_hat * r + d = (x - running_mean) / sigma, whose gradient is the
# inference transform's, gamma * dout / sigma (sigma = sigma_B / r).
# @edit batchrenorm_backward
# old: 'dx = gamma * r / sigma_b * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))'
# new: 'dx = gamma * r / sigma_b * dout'
