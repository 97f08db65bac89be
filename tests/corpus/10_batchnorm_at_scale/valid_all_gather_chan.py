# expect: full
# As nn.SyncBatchNorm does it: all-gather each rank's (mean, variance, count) and combine them
# with Chan et al.'s pairwise formula; the backward keeps x and the statistics, not x_hat.
# @cell SyncBatchNormFunction
class SyncBatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, process_group):
        dims = tuple(d for d in range(x.dim()) if d != 1)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        n = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        mine = torch.cat([mean, var, n])
        world = dist.get_world_size(process_group)
        gathered = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(gathered, mine, group=process_group)
        c = x.shape[1]
        g_mean, g_m2, g_n = (
            gathered[0][:c],
            gathered[0][c : 2 * c] * gathered[0][-1],
            gathered[0][-1],
        )
        for other in gathered[1:]:
            o_mean, o_n = other[:c], other[-1]
            o_m2 = other[c : 2 * c] * o_n
            total = g_n + o_n
            delta = o_mean - g_mean
            g_mean = g_mean + delta * o_n / total
            g_m2 = g_m2 + o_m2 + delta**2 * g_n * o_n / total
            g_n = total
        g_var = g_m2 / g_n
        if running_mean is not None:
            running_mean.lerp_(g_mean, momentum)
            running_var.lerp_(g_var * g_n / (g_n - 1), momentum)
        inv_std = (g_var + eps).rsqrt()
        ctx.save_for_backward(x, g_mean, inv_std, weight, g_n)
        ctx.group = process_group
        return (x - g_mean.view(shape)) * (inv_std * weight).view(shape) + bias.view(shape)

    @staticmethod
    def backward(ctx, grad_out):
        x, mean, inv_std, weight, n = ctx.saved_tensors
        dims = tuple(d for d in range(x.dim()) if d != 1)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        x_hat = (x - mean.view(shape)) * inv_std.view(shape)
        sum_dy = grad_out.sum(dims)
        sum_dy_xhat = (grad_out * x_hat).sum(dims)
        both = torch.stack([sum_dy, sum_dy_xhat])
        dist.all_reduce(both, group=ctx.group)
        dx = grad_out - both[0].view(shape) / n - x_hat * both[1].view(shape) / n
        dx = dx * (weight * inv_std).view(shape)
        return dx, sum_dy_xhat, sum_dy, None, None, None, None, None
