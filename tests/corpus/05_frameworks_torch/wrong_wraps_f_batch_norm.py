# expect: test_function = wraps the framework's batch norm
# expect: test_train = wraps the framework's batch norm
# expect: test_momentum_none = wraps the framework's batch norm
# expect: test_eval = wraps the framework's batch norm
# expect: test_state_dict = wraps the framework's batch norm
# @cell BatchNormFunction
import torch.nn.functional as F


class BatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        with torch.enable_grad():
            xd = x.detach().requires_grad_()
            wd = weight.detach().requires_grad_()
            bd = bias.detach().requires_grad_()
            out = F.batch_norm(xd, None, None, wd, bd, training=True, eps=eps)
        ctx.save_for_backward(xd, wd, bd, out)
        return out.detach()

    @staticmethod
    def backward(ctx, grad_out):
        xd, wd, bd, out = ctx.saved_tensors
        dx, dw, db = torch.autograd.grad(out, (xd, wd, bd), grad_out)
        return dx, dw, db, None
