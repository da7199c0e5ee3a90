"""Convolutional blocks shared by every model family: an encoder to a vector and a decoder from one.

For an image of side S both stacks have one stride-2 stage per halving of S down to a B x B feature map, B = 4
for powers of two (64 -> 32 -> 16 -> 8 -> 4) and the odd part otherwise (60 -> 30 -> 15); widths double per stage
from ``width`` (DCGAN's layout: 4x4 kernels, batch norm,
LeakyReLU 0.2 in the encoder, ReLU in the decoder, tanh at the output).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from latentds.errors import InvalidParameterError


def stages(image_size: int) -> int:
    """The number of stride-2 stages between an image of side ``image_size`` and the smallest feature map."""
    n, side = 0, image_size
    while side % 2 == 0 and side > 4:
        side, n = side // 2, n + 1
    if image_size < 8 or n == 0 or side > 32:
        raise InvalidParameterError(f"image_size must be at least 8 and halve at least once to a side of at most 32 "
                                    f"(a power of two, or e.g. 60 -> 30 -> 15; got {image_size})")
    return n


@contextmanager
def running_stats_frozen(*modules: nn.Module):
    """Batch norm inside ``modules`` still normalises with each batch's statistics (training mode) but leaves its
    running statistics, the ones eval mode uses, as they were: for training passes over inputs that are not the
    data's (an image the decoder drew, a code from the prior), whose statistics would otherwise be mixed into them.

    PyTorch updates running = (1 - momentum) * running + momentum * batch, so momentum 0 keeps them (bit for
    bit); the count of batches seen is restored too.
    """
    norms = [m for module in modules for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


def base_side(image_size: int) -> int:
    """The side of the smallest feature map (4 for powers of two)."""
    return image_size >> stages(image_size)


class ConvEncoder(nn.Module):
    """(N, C, S, S) images -> (N, out_features)."""

    def __init__(self, image_size: int, channels: int, width: int, out_features: int):
        super().__init__()
        layers, c = [], channels
        for i in range(stages(image_size)):
            w = width * 2**i
            layers += [nn.Conv2d(c, w, 4, 2, 1, bias=i == 0)]
            if i > 0:
                layers += [nn.BatchNorm2d(w)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c * base_side(image_size) ** 2, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """(N, in_features) -> (N, C, S, S) images in [-1, 1]."""

    def __init__(self, image_size: int, channels: int, width: int, in_features: int):
        super().__init__()
        n, self.side = stages(image_size), base_side(image_size)
        self.top = width * 2 ** (n - 1)
        self.project = nn.Sequential(nn.Linear(in_features, self.top * self.side**2), nn.ReLU(inplace=True))
        layers, c = [], self.top
        for i in reversed(range(n - 1)):
            w = width * 2**i
            layers += [nn.ConvTranspose2d(c, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(self.project(z).view(-1, self.top, self.side, self.side))
