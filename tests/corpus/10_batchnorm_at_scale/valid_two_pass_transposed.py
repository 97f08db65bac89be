# expect: full
# pipeline: in-process only
# Two collectives in the forward pass (the mean first, then the squared deviations from it),
# three separate all-reduces, channels moved to the front with a transpose, in-place arithmetic
# and copy_ into the buffers.
# @cell SyncBatchNormFunction
class SyncBatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, process_group):
        xt = x.transpose(0, 1).reshape(x.shape[1], -1)
        count = torch.tensor(float(xt.shape[1]), dtype=x.dtype, device=x.device)
        dist.all_reduce(count, group=process_group)
        s = xt.sum(1)
        dist.all_reduce(s, group=process_group)
        mean = s.div_(count)
        centered = xt - mean[:, None]
        sq = centered.pow(2).sum(1)
        dist.all_reduce(sq, group=process_group)
        var = sq / count
        if running_mean is not None:
            new_var = (1 - momentum) * running_var + momentum * var * count / (count - 1)
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.copy_(new_var)
        inv_std = 1.0 / torch.sqrt(var + eps)
        x_hat_t = centered * inv_std[:, None]
        ctx.save_for_backward(x_hat_t, inv_std, weight, count)
        ctx.group, ctx.shape = process_group, x.shape
        out_t = x_hat_t * weight[:, None] + bias[:, None]
        return out_t.reshape(x.shape[1], x.shape[0], *x.shape[2:]).transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_out):
        x_hat_t, inv_std, weight, count = ctx.saved_tensors
        c = grad_out.shape[1]
        g = grad_out.transpose(0, 1).reshape(c, -1)
        dbias = g.sum(1)
        dweight = (g * x_hat_t).sum(1)
        a, b = dbias.clone(), dweight.clone()
        dist.all_reduce(a, group=ctx.group)
        dist.all_reduce(b, group=ctx.group)
        dx_t = g.clone()
        dx_t -= a[:, None] / count
        dx_t -= x_hat_t * b[:, None] / count
        dx_t *= (weight * inv_std)[:, None]
        dx = dx_t.reshape(c, grad_out.shape[0], *grad_out.shape[2:]).transpose(0, 1)
        return dx, dweight, dbias, None, None, None, None, None
