"""DCGAN (Radford et al. 2016) as in the UTKFace latent-walk study: a generator and a discriminator, no encoder.

Generator: latent 100 -> dense to (S/16)^2 x ``width`` (8 x 8 x 128 for 128 px) -> four stride-2 transposed
convolutions of ``width`` filters with LeakyReLU 0.2 -> a 3 x 3 convolution to the image, tanh. ``batch_norm``
(default on, as in Radford et al.) adds batch norm after each transposed convolution: the face study's network had
none, and without it the generator saturated to the black background of cuboid renders within 100 steps here
(32 px, Adam 2e-4: every sample -1.0, discriminator loss 0.001), while with it the game stayed balanced
(discriminator loss ~0.69 over 300 steps). ``batch_norm = false`` is the study's network exactly.
Discriminator: four ``width``-filter 3 x 3 stride-2 convolutions with LeakyReLU 0.2 -> dropout 0.4 -> one logit.
Groups ``generator`` (non-saturating loss: BCE of the discriminator on generated images against "real") and
``discriminator`` (BCE of data against generated images), both stepping every step; Adam 2e-4, beta1 0.5.
With no encoder, ``latentds analyze`` studies it through its codes: samples, walks between random codes, and
arithmetic on groups of generated samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from latentds.errors import InvalidParameterError
from latentds.zoo.base import LatentModel, ModelConfig, images

UPSAMPLINGS = 4


@dataclass(frozen=True)
class DCGANConfig(ModelConfig):
    image_size: int = 128
    latent_dim: int = 100
    width: int = 128  # filters of every generator and discriminator convolution
    dropout: float = 0.4
    batch_norm: bool = True  # batch norm after the generator's transposed convolutions (see the module docstring)

    def __post_init__(self):
        super().__post_init__()
        if self.image_size < 16 or self.image_size % 2**UPSAMPLINGS:
            raise InvalidParameterError(f"dcgan: model.image_size must be a multiple of 16, at least 16 "
                                        f"(four stride-2 stages; got {self.image_size})")


class Generator(nn.Module):
    def __init__(self, c: DCGANConfig):
        super().__init__()
        self.side, self.width = c.image_size // 2**UPSAMPLINGS, c.width
        self.project = nn.Sequential(nn.Linear(c.latent_dim, self.side**2 * c.width), nn.LeakyReLU(0.2))
        layers = []
        for _ in range(UPSAMPLINGS):
            layers += [nn.ConvTranspose2d(c.width, c.width, 4, 2, 1)]
            layers += [nn.BatchNorm2d(c.width)] if c.batch_norm else []
            layers += [nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers, nn.Conv2d(c.width, c.channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(self.project(z).view(-1, self.width, self.side, self.side))


class Discriminator(nn.Module):
    def __init__(self, c: DCGANConfig):
        super().__init__()
        layers, channels = [], c.channels
        for _ in range(UPSAMPLINGS):
            layers += [nn.Conv2d(channels, c.width, 3, 2, 1), nn.LeakyReLU(0.2)]
            channels = c.width
        side = c.image_size // 2**UPSAMPLINGS
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Dropout(c.dropout), nn.Linear(c.width * side**2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class DCGAN(LatentModel, family="dcgan"):
    Config = DCGANConfig
    summary = "DCGAN (Radford et al. 2016), 128 px, latent 100: generator + discriminator, no encoder"
    has_encoder = False

    def __init__(self, config: DCGANConfig | None = None):
        super().__init__(config)
        self.generator = Generator(self.config)
        self.discriminator = Discriminator(self.config)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"generator": list(self.generator.parameters()),
                "discriminator": list(self.discriminator.parameters())}

    def losses(self, batch, step: int = 0) -> dict[str, dict[str, torch.Tensor]]:
        x = images(batch)
        fake = self.generator(torch.randn(len(x), self.config.latent_dim, device=x.device, dtype=x.dtype))
        fake_logits = self.discriminator(fake)
        g = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        real_logits, detached_logits = self.discriminator(x), self.discriminator(fake.detach())
        d = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                   + F.binary_cross_entropy_with_logits(detached_logits, torch.zeros_like(detached_logits)))
        accuracy = torch.cat([(real_logits > 0).float(), (detached_logits < 0).float()]).mean()
        return {"generator": {"loss": g}, "discriminator": {"loss": d, "accuracy": accuracy}}

    def loss(self, batch, group: str = "generator", step: int = 0) -> dict[str, torch.Tensor]:
        return self.losses(batch, step)["generator" if group == "model" else group]
