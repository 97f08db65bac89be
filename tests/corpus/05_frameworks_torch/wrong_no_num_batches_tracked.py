# expect: test_train = failed
# expect: test_momentum_none = failed
# expect: test_state_dict = missing num_batches_tracked
# @cell modules
# Write BatchNorm1d and BatchNorm2d as drop-in replacements of torch.nn.BatchNorm1d/2d:
# the same constructor (num_features, eps=1e-5, momentum=0.1, affine=True,
# track_running_stats=True, device=None, dtype=None), the same parameters (weight, bias),
# buffers (running_mean, running_var, num_batches_tracked) and state_dict keys. In training
# use BatchNormFunction and update the running statistics (momentum weights the NEW batch;
# running_var stores the unbiased variance; momentum=None means a cumulative average); in
# eval mode normalize with the running statistics. A shared base class keeps it short.
class _BatchNorm(nn.Module):
    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=True,
        track_running_stats=True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.num_batches_tracked = 0

        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.num_batches_tracked = None

    def _check_input_dim(self, x):
        raise NotImplementedError

    def forward(self, x):
        self._check_input_dim(x)
        c = self.num_features
        shape = [1, -1] + [1] * (x.dim() - 2)
        weight = self.weight if self.affine else torch.ones(c, dtype=x.dtype, device=x.device)
        bias = self.bias if self.affine else torch.zeros(c, dtype=x.dtype, device=x.device)
        if self.training or not self.track_running_stats:
            if self.training and self.track_running_stats:
                self._update_running_stats(x)
            return BatchNormFunction.apply(x, weight, bias, self.eps)
        x_hat = (x - self.running_mean.view(shape)) * torch.rsqrt(
            self.running_var.view(shape) + self.eps
        )
        return x_hat * weight.view(shape) + bias.view(shape)

    @torch.no_grad()
    def _update_running_stats(self, x):
        dims = [d for d in range(x.dim()) if d != 1]
        n = x.numel() // x.shape[1]
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False) * n / max(n - 1, 1)
        self.running_mean.mul_(1 - factor).add_(factor * mean)
        self.running_var.mul_(1 - factor).add_(factor * var)


class BatchNorm1d(_BatchNorm):
    def _check_input_dim(self, x):
        if x.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {x.dim()}D input)")


class BatchNorm2d(_BatchNorm):
    def _check_input_dim(self, x):
        if x.dim() != 4:
            raise ValueError(f"expected 4D input (got {x.dim()}D input)")
