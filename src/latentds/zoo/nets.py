"""Convolutional blocks shared by every model family: an encoder to a vector and a decoder from one.

For an image of side S (a power of two, at least 8) both stacks have log2(S) - 2 stride-2 stages between S x S
and a 4 x 4 feature map; widths double per stage from ``width`` (DCGAN's layout: 4x4 kernels, batch norm,
LeakyReLU 0.2 in the encoder, ReLU in the decoder, tanh at the output).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from latentds.errors import InvalidParameterError


def stages(image_size: int) -> int:
    n = math.log2(image_size) if image_size > 0 else -1
    if n != int(n) or image_size < 8:
        raise InvalidParameterError(f"image_size must be a power of two, at least 8 (got {image_size})")
    return int(n) - 2


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
        self.head = nn.Linear(c * 16, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """(N, in_features) -> (N, C, S, S) images in [-1, 1]."""

    def __init__(self, image_size: int, channels: int, width: int, in_features: int):
        super().__init__()
        n = stages(image_size)
        self.top = width * 2 ** (n - 1)
        self.project = nn.Sequential(nn.Linear(in_features, self.top * 16), nn.ReLU(inplace=True))
        layers, c = [], self.top
        for i in reversed(range(n - 1)):
            w = width * 2**i
            layers += [nn.ConvTranspose2d(c, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(self.project(z).view(-1, self.top, 4, 4))
