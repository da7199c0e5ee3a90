"""DCGAN (Radford et al. 2016) as in the UTKFace latent-walk study: a generator and a discriminator, no encoder.

``architecture = "document"`` (the recipe's): the networks of the study (seed document 003), layer for layer.
Generator: latent 100 -> dense to 8 x 8 x ``width`` (128), LeakyReLU 0.2 -> ``stages`` 4 x 4 stride-2 transposed
convolutions of ``width`` filters, each with LeakyReLU 0.2 -> an 8 x 8 convolution to the image, tanh; no batch
norm. Discriminator: a 3 x 3 stride-1 convolution, ``stages`` 3 x 3 stride-2 convolutions (``width`` filters,
LeakyReLU 0.2 each) -> flatten -> dropout 0.4 -> one logit (the document's dense sigmoid, inside the BCE).
``stages = log2(image_size / 8)``: four at the document's 128 px, fewer at smaller sizes (two at 32 px), so the
generator always starts from 8 x 8 and the discriminator always ends there. Weights start as Keras does
(Glorot-uniform kernels, zero biases).

``architecture = "compact"`` (the default, so models saved before the field existed load unchanged): four stages
from (S/16)^2, a 3 x 3 output convolution, no stride-1 convolution in the discriminator, PyTorch's initialisation.

``batch_norm`` adds batch norm after each transposed convolution (not in the document). On cuboid renders (32 px,
64 filters, 10,000 varied images, batch 64, Adam 2e-4 beta1 0.5) the document's networks collapse: after 40 steps
every sample is near-black (sample diversity, mean pairwise MSE of 256 samples / of 256 data images, 0.0008; the
health gate wants 0.1), after 80 all are exactly -1 (0.0000, discriminator loss 0.06). One-sided label smoothing
0.2 kept them grey and alike (0.021 at step 40). Batch norm in the generator (Radford et al. 2016 have it) kept the
game balanced (discriminator accuracy 0.45-0.66 over steps 80-280) with diversity 0.29, 0.39, 0.38, 1.29, 0.70
and 0.59 at steps 80 to 280 (1.8 epochs; the 1.29 is speckle noise on the background), the samples small centred
blobs of a few colours, mean brightness the data's (-0.962 against -0.956), not yet chains; so the study's ``cpu``
scale adds it and ``full`` runs the document's networks as published. ``label_smoothing`` trains
the discriminator against ``1 - label_smoothing`` for real images (one-sided, Salimans et al. 2016; 0 in the
document). Groups ``generator`` (non-saturating loss: BCE of the discriminator on generated images against
"real") and ``discriminator`` (BCE of data against generated images), both stepping every step; Adam 2e-4, beta1
0.5 as the document. With no encoder, ``latentds analyze`` studies it through its codes: samples, walks between
random codes, and arithmetic on groups of generated samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from latentds.errors import InvalidParameterError
from latentds.zoo.base import LatentModel, ModelConfig, images
from latentds.zoo.capabilities import Capabilities

UPSAMPLINGS = 4  # the compact networks' stride-2 stages
START = 8  # the document's networks: the generator's first and the discriminator's last side
ARCHITECTURES = ("compact", "document")


@dataclass(frozen=True)
class DCGANConfig(ModelConfig):
    image_size: int = 128
    latent_dim: int = 100
    width: int = 128  # filters of every generator and discriminator convolution
    dropout: float = 0.4
    batch_norm: bool = True  # batch norm after the generator's transposed convolutions (see the module docstring)
    architecture: str = "compact"  # "document": the study's networks exactly (see the module docstring)
    label_smoothing: float = 0.0  # the discriminator's target for real images is 1 - label_smoothing

    def __post_init__(self):
        super().__post_init__()
        if self.architecture not in ARCHITECTURES:
            raise InvalidParameterError(f"dcgan: model.architecture must be one of {', '.join(ARCHITECTURES)} "
                                        f"(got {self.architecture!r})")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InvalidParameterError(f"dcgan: model.label_smoothing must be in [0, 1) (got {self.label_smoothing})")
        if self.architecture == "document":
            k = self.image_size // START
            if k < 2 or k & (k - 1) or self.image_size % START:
                raise InvalidParameterError(f"dcgan: with architecture \"document\", model.image_size must be 8 "
                                            f"times a power of two, at least 16 (got {self.image_size})")
        elif self.image_size < 16 or self.image_size % 2**UPSAMPLINGS:
            raise InvalidParameterError(f"dcgan: model.image_size must be a multiple of 16, at least 16 "
                                        f"(four stride-2 stages; got {self.image_size})")

    @property
    def stages(self) -> int:
        """Stride-2 stages of each network."""
        return int(math.log2(self.image_size // START)) if self.architecture == "document" else UPSAMPLINGS

    @property
    def side(self) -> int:
        """The generator's first (and the discriminator's last) feature-map side."""
        return self.image_size // 2**self.stages


class Generator(nn.Module):
    def __init__(self, c: DCGANConfig):
        super().__init__()
        self.side, self.width = c.side, c.width
        self.project = nn.Sequential(nn.Linear(c.latent_dim, self.side**2 * c.width), nn.LeakyReLU(0.2))
        layers = []
        for _ in range(c.stages):
            layers += [nn.ConvTranspose2d(c.width, c.width, 4, 2, 1)]
            layers += [nn.BatchNorm2d(c.width)] if c.batch_norm else []
            layers += [nn.LeakyReLU(0.2)]
        # the document's 8 x 8 "same" convolution pads as Keras does: 3 before, 4 after
        out = ([nn.ZeroPad2d((3, 4, 3, 4)), nn.Conv2d(c.width, c.channels, 8)] if c.architecture == "document"
               else [nn.Conv2d(c.width, c.channels, 3, padding=1)])
        self.features = nn.Sequential(*layers, *out, nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(self.project(z).view(-1, self.width, self.side, self.side))


class Discriminator(nn.Module):
    def __init__(self, c: DCGANConfig):
        super().__init__()
        layers, channels = [], c.channels
        if c.architecture == "document":
            layers += [nn.Conv2d(channels, c.width, 3, 1, 1), nn.LeakyReLU(0.2)]
            channels = c.width
        for _ in range(c.stages):
            layers += [nn.Conv2d(channels, c.width, 3, 2, 1), nn.LeakyReLU(0.2)]
            channels = c.width
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Dropout(c.dropout),
                                      nn.Linear(c.width * c.side**2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def keras_init(module: nn.Module) -> None:
    """Keras' default initialisation: Glorot-uniform kernels, zero biases (batch norm keeps its own)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class DCGAN(LatentModel, family="dcgan"):
    Config = DCGANConfig
    summary = "DCGAN (Radford et al. 2016), 128 px, latent 100: generator + discriminator, no encoder"
    capabilities = Capabilities(encoder=False, groups=("generator", "discriminator"))

    def __init__(self, config: DCGANConfig | None = None):
        super().__init__(config)
        self.generator = Generator(self.config)
        self.discriminator = Discriminator(self.config)
        if self.config.architecture == "document":
            keras_init(self)

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
        real_target = torch.full_like(real_logits, 1.0 - self.config.label_smoothing)
        d = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, real_target)
                   + F.binary_cross_entropy_with_logits(detached_logits, torch.zeros_like(detached_logits)))
        accuracy = torch.cat([(real_logits > 0).float(), (detached_logits < 0).float()]).mean()
        return {"generator": {"loss": g}, "discriminator": {"loss": d, "accuracy": accuracy}}
