"""Cycle-consistent VAE (Jha et al. 2018, arXiv 1804.10469): a latent split into specified s and unspecified z.

The encoder gives s (the specified factor, e.g. identity; deterministic, ``class_dim``) and q(z | x) (everything
else, ``style_dim``); the decoder takes (s, z). The latent vector is [s, z]: ``partition()`` says where each lies.
It trains on pairs of images sharing the specified label (``Capabilities(batches="pairs")``), in two parameter
groups as the reference implementation (github.com/ananyahjha93/cycle-consistent-vae) does:
- ``autoencoder`` (encoder + decoder), the forward cycle: each image of a pair is reconstructed from its own z and
  its partner's s (s must carry what the pair shares), reconstruction_weight x mean squared error, plus
  kl_weight x KL(q(z | x) || N(0, I)) per pixel;
- ``reverse_cycle`` (encoder only): z drawn from the prior is decoded with two different s (two pairs' first
  images), both images are encoded again, and reverse_cycle_weight x the L1 distance between the two z means asks
  the encoder to read z back whatever s it was decoded with.
Defaults as the reference re-implementation: 60 x 60 x 3, style 512, class 512, Adam 1e-4 (0.9, 0.999),
64 pairs a batch, weights 2 / 10 / 3 (the recipe divides the LR by 10 after 80 of its 150 epochs). The loss
scaling is the reference's (per-pixel MSE, KL per pixel); on renders, whose foreground is a small part of the
image, KL weight 3 collapses z onto the prior within a few hundred steps and the decoder draws the mean image: the
cycle-identity study's cpu scale uses 0.03 (its ``differs`` has the measurements).

``sample`` draws z from the prior and s from a normal fitted to the s seen in training (running mean and
variance, like batch norm's, saved with the weights): s has no prior of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from latentds.errors import InvalidParameterError
from latentds.zoo.base import LatentModel, ModelConfig, images
from latentds.zoo.capabilities import Capabilities
from latentds.zoo.models.vae import reparameterise
from latentds.zoo.nets import ConvDecoder, ConvEncoder, running_stats_frozen


@dataclass(frozen=True)
class CycleVAEConfig(ModelConfig):
    image_size: int = 60
    class_dim: int = 512  # s
    style_dim: int = 512  # z
    latent_dim: int = 1024  # class_dim + style_dim
    width: int = 64
    reconstruction_weight: float = 2.0
    reverse_cycle_weight: float = 10.0
    kl_weight: float = 3.0

    def __post_init__(self):
        super().__post_init__()
        if self.latent_dim != self.class_dim + self.style_dim:
            raise InvalidParameterError(f"model.latent_dim must equal class_dim + style_dim "
                                        f"({self.class_dim} + {self.style_dim}), got {self.latent_dim}")


class CycleVAE(LatentModel, family="cycle_vae"):
    Config = CycleVAEConfig
    summary = "cycle-consistent VAE (Jha et al. 2018): s (identity) / z (style) split, trained on same-identity pairs"
    capabilities = Capabilities(posterior=True, partitioned=True, batches="pairs",
                                groups=("autoencoder", "reverse_cycle"))

    def __init__(self, config: CycleVAEConfig | None = None):
        super().__init__(config)
        c = self.config
        self.encoder = ConvEncoder(c.image_size, c.channels, c.width, c.class_dim + 2 * c.style_dim)
        self.decoder = ConvDecoder(c.image_size, c.channels, c.width, c.latent_dim)
        self.register_buffer("s_mean", torch.zeros(c.class_dim))
        self.register_buffer("s_var", torch.ones(c.class_dim))

    def partition(self) -> dict[str, slice]:
        c = self.config
        return {"s": slice(0, c.class_dim), "z": slice(c.class_dim, c.latent_dim)}

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(s, z mean, z log variance) of images x."""
        c = self.config
        s, mu, logvar = self.encoder(x).split([c.class_dim, c.style_dim, c.style_dim], dim=1)
        return s, mu, logvar.clamp(-30.0, 20.0)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent [s, z] as a distribution: s exact (log variance -inf stands as -30), z from q(z | x)."""
        s, mu, logvar = self.split(x)
        return torch.cat([s, mu], 1), torch.cat([torch.full_like(s, -30.0), logvar], 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        s, mu, _ = self.split(x)
        return torch.cat([s, mu], 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        c = self.config
        noise = torch.randn(n, c.latent_dim, generator=generator).to(self.s_mean.device)
        s = self.s_mean + self.s_var.sqrt() * noise[:, :c.class_dim]
        return torch.cat([s, noise[:, c.class_dim:]], 1)

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return {"autoencoder": list(self.encoder.parameters()) + list(self.decoder.parameters()),
                "reverse_cycle": list(self.encoder.parameters())}

    def losses(self, batch, step: int = 0) -> dict[str, dict[str, torch.Tensor]]:
        c = self.config
        x = images(batch)
        if len(x) < 4 or len(x) % 2:
            raise InvalidParameterError("cycle_vae trains on pairs (data.batches = \"pairs\"): an even batch of at "
                                        "least 4 images, partners side by side")
        s, mu, logvar = self.split(x)
        if self.training:
            self._track(s.detach())
        z = reparameterise(mu, logvar)
        partner = torch.arange(len(x), device=x.device) ^ 1  # 0<->1, 2<->3, ...: the other image of each pair
        swapped = self.decoder(torch.cat([s[partner], z], 1))
        pixels = x[0].numel()
        recon = F.mse_loss(swapped, x)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean() / pixels
        # reverse cycle: one z from the prior, decoded with the s of two different pairs, must come back alike
        # (batch norm's running statistics are the data's alone: a prior z and a drawn image are not data, and
        # mixing their statistics in made eval-mode reconstructions drift from training mode's, ever further)
        first = s[0::2].detach()
        z_prior = torch.randn(len(first), c.style_dim, device=x.device, dtype=first.dtype)
        with running_stats_frozen(self.encoder, self.decoder):
            a = self.decoder(torch.cat([first, z_prior], 1))
            b = self.decoder(torch.cat([first.roll(1, 0), z_prior], 1))
            reverse = F.l1_loss(self.split(a)[1], self.split(b)[1])
        return {"autoencoder": {"loss": c.reconstruction_weight * recon + c.kl_weight * kl, "recon": recon, "kl": kl},
                "reverse_cycle": {"loss": c.reverse_cycle_weight * reverse, "reverse_cycle": reverse}}

    @torch.no_grad()
    def _track(self, s: torch.Tensor, momentum: float = 0.01) -> None:
        self.s_mean.lerp_(s.float().mean(0), momentum)
        self.s_var.lerp_(s.float().var(0, unbiased=False), momentum)
