"""VAE (Kingma & Welling 2014) and beta-VAE (Higgins et al. 2017).

Encoder -> (mu, log variance); z = mu + sigma * eps; decoder -> tanh images for inputs in [-1, 1].
Loss per image: summed squared error + beta * KL(q(z|x) || N(0, I)), averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latentds.zoo.base import LatentModel, ModelConfig, images
from latentds.zoo.capabilities import Capabilities
from latentds.zoo.nets import ConvDecoder, ConvEncoder


@dataclass(frozen=True)
class VAEConfig(ModelConfig):
    width: int = 32  # channels of the first encoder stage; doubles per stage
    beta: float = 1.0  # weight of the KL term


class VAE(LatentModel, family="vae"):
    Config = VAEConfig
    summary = "VAE (Kingma & Welling 2014): conv encoder/decoder, latent 128, summed squared error + KL"
    capabilities = Capabilities(posterior=True)

    def __init__(self, config: VAEConfig | None = None):
        super().__init__(config)
        c = self.config
        self.encoder = ConvEncoder(c.image_size, c.channels, c.width, 2 * c.latent_dim)
        self.decoder = ConvDecoder(c.image_size, c.channels, c.width, c.latent_dim)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, log variance) of q(z | x), each (N, latent_dim)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def losses(self, batch, step: int = 0) -> dict[str, dict[str, torch.Tensor]]:
        x = images(batch)
        mu, logvar = self.posterior(x)
        z = reparameterise(mu, logvar)
        recon = (self.decoder(z) - x).pow(2).flatten(1).sum(1).mean()
        kl = kl_normal(mu, logvar)
        return {"model": {"loss": recon + self.config.beta * kl, "recon": recon, "kl": kl}}


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """One sample of N(mu, exp(logvar)) that gradients flow through."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the latent, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()


@dataclass(frozen=True)
class BetaVAEConfig(VAEConfig):
    latent_dim: int = 32
    beta: float = 4.0


class BetaVAE(VAE, family="beta_vae"):
    """The same model with a heavier KL weight (beta = 4) and a smaller latent (32) by default."""

    Config = BetaVAEConfig
    summary = "beta-VAE (Higgins et al. 2017): the VAE with beta = 4 and latent 32"
