"""Small models and a plain training loop for the notebooks' experiments (CPU or CUDA)."""

from __future__ import annotations

import numpy as np

from bnlab.core.frameworks import import_torch


def digits_cnn(bn2d=None, bn1d=None, channels: int = 16, hidden: int = 64):
    """Conv(3x3) -> [BN] -> ReLU -> MaxPool -> Linear -> [BN] -> ReLU -> Linear, for 8x8 inputs.

    The flattened size is computed from the input size, not hard-coded; the layers before a BN
    have no bias (BN's beta replaces it).
    """
    torch = import_torch()
    nn = torch.nn
    layers = [nn.Conv2d(1, channels, 3, padding=1, bias=bn2d is None)]
    layers += [bn2d(channels)] if bn2d else []
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    with torch.no_grad():
        flat = nn.Sequential(*[m for m in layers if not hasattr(m, "running_mean")])(
            torch.zeros(1, 1, 8, 8)
        ).shape[1]
    layers += [nn.Linear(flat, hidden, bias=bn1d is None)]
    layers += [bn1d(hidden)] if bn1d else []
    layers += [nn.ReLU(), nn.Linear(hidden, 10)]
    return nn.Sequential(*layers)


def train_classifier(model, data, epochs=4, lr=0.05, batch_size=64, device="cpu", seed=0):
    """SGD with momentum; returns the test accuracy after each epoch."""
    torch = import_torch()
    x_train = torch.from_numpy(data.x_train).to(device)
    y_train = torch.from_numpy(data.y_train).to(device)
    x_test = torch.from_numpy(data.x_test).to(device)
    y_test = torch.from_numpy(data.y_test).to(device)
    if x_train.ndim != 4:
        raise ValueError("train_classifier expects images (N, 1, 8, 8); use load_digits()")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    accuracies = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen).to(device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue  # BN cannot train on a batch of one
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            accuracies.append((model(x_test).argmax(1) == y_test).float().mean().item())
    return np.array(accuracies)
