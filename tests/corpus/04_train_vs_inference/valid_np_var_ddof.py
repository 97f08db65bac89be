# expect: full
# @cell BatchNorm1d
class BatchNorm1d:
    """Batch normalization of a fully connected layer, with PyTorch's semantics, in NumPy.

    Parameters
    ----------
    num_features : int
        D, the number of features.
    eps : float
        Added to the variance inside the square root.
    momentum : float
        Weight of the NEW batch in the running averages (PyTorch's convention):
        running = (1 - momentum) * running + momentum * batch_statistic.

    Attributes
    ----------
    gamma, beta : ndarray, shape (D,)       start at ones and zeros
    running_mean, running_var : ndarray, shape (D,)   start at zeros and ones
    training : bool                          True after construction and train()
    dgamma, dbeta : ndarray, shape (D,)      set by backward()

    In training, forward normalizes with the batch statistics (biased variance) and
    updates the running averages; running_var stores the UNBIASED batch variance, as
    torch.nn.BatchNorm1d does. In eval mode it normalizes with the running statistics and
    updates nothing. backward(dout) follows the last training-mode forward and returns dx.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.gamma = np.ones(num_features)
        self.beta = np.zeros(num_features)
        self.running_mean = np.zeros(num_features)
        self.running_var = np.ones(num_features)
        self.training = True
        self.dgamma = self.dbeta = self._cache = None

    def train(self):
        self.training = True
        return self

    def eval(self):
        self.training = False
        return self

    def forward(self, x):
        if not self.training:
            x_hat = (x - self.running_mean) / np.sqrt(self.running_var + self.eps)
            return self.gamma * x_hat + self.beta
        n = x.shape[0]
        mu = x.mean(axis=0)
        xc = x - mu
        var = (xc * xc).mean(axis=0)
        m = self.momentum
        self.running_mean = (1 - m) * self.running_mean + m * mu
        self.running_var = (1 - m) * self.running_var + m * x.var(axis=0, ddof=1)
        std = np.sqrt(var + self.eps)
        x_hat = xc / std
        self._cache = (x_hat, std)
        return self.gamma * x_hat + self.beta

    def backward(self, dout):
        x_hat, std = self._cache
        n = dout.shape[0]
        self.dbeta = dout.sum(axis=0)
        self.dgamma = (dout * x_hat).sum(axis=0)
        return self.gamma / (n * std) * (n * dout - self.dbeta - x_hat * self.dgamma)
