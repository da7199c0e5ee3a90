"""VAE (Kingma & Welling 2014) and beta-VAE (Higgins et al. 2017).

Encoder -> (mu, log variance); z = mu + sigma * eps; decoder -> tanh images for inputs in [-1, 1].
Loss per image: summed squared error SE + beta * KL(q(z|x) || N(0, I)), averaged over the batch; one optimiser.

``optimisers = "separate"`` trains as the kl-weight study's document (seed 004) does: an encoder and a decoder
optimiser (groups "encoder" and "decoder"), on its scale, sums over the batch of B images:
    decoder loss = sum of 0.5 * SE
    encoder loss = alpha * sum(KL) / B + sum of 0.5 * SE,   alpha = beta * B / 2 (beta = 2 alpha / B)
The document prints its encoder loss as the KL term; the encoder's gradient holds the reconstruction term's too
(through the decoder: an encoder stepped on the KL alone encodes nothing, and the document shows reconstructions).
Each group's gradient equals that of the encoder loss (the KL does not depend on the decoder), which is B / 2 x the
one-optimiser loss, and Adam steps element-wise: the two optimisers step exactly as one Adam on the encoder loss,
i.e. as the default with Adam's eps and L2 weight decay divided by B / 2 (tests/test_vae_optimisers.py: the first
through the trainer; the second, and the difference from the default, step by step).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from latentds.errors import InvalidParameterError
from latentds.zoo.base import LatentModel, ModelConfig, images
from latentds.zoo.capabilities import Capabilities
from latentds.zoo.nets import ConvDecoder, ConvEncoder


OPTIMISERS = ("single", "separate")


@dataclass(frozen=True)
class VAEBaseConfig(ModelConfig):
    """The fields every VAE-derived family has (vae, beta_vae, clamped_vae, vae_disc)."""

    width: int = 32  # channels of the first encoder stage; doubles per stage
    beta: float = 1.0  # weight of the KL term


@dataclass(frozen=True)
class VAEConfig(VAEBaseConfig):
    optimisers: str = "single"  # "single" (one optimiser) or "separate" (encoder and decoder: the module docstring)

    def __post_init__(self):
        super().__post_init__()
        if self.optimisers not in OPTIMISERS:
            raise InvalidParameterError(f"model.optimisers must be single (one optimiser) or separate (encoder and "
                                        f"decoder optimisers, as the kl-weight document) (got {self.optimisers!r})")


def separate(config) -> bool:
    """Whether ``config`` asks for the encoder and decoder optimisers (families without the option: never)."""
    return getattr(config, "optimisers", "single") == "separate"


class VAE(LatentModel, family="vae"):
    Config = VAEConfig
    summary = "VAE (Kingma & Welling 2014): conv encoder/decoder, latent 128, summed squared error + KL"
    capabilities = Capabilities(posterior=True)

    @classmethod
    def capabilities_for(cls, config) -> Capabilities:
        return replace(cls.capabilities, groups=("encoder", "decoder")) if separate(config) else cls.capabilities

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

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        if separate(self.config):
            return {"encoder": list(self.encoder.parameters()), "decoder": list(self.decoder.parameters())}
        return super().parameter_groups()

    def losses(self, batch, step: int = 0) -> dict[str, dict[str, torch.Tensor]]:
        x = images(batch)
        mu, logvar = self.posterior(x)
        z = reparameterise(mu, logvar)
        recon = (self.decoder(z) - x).pow(2).flatten(1).sum(1).mean()
        kl = kl_normal(mu, logvar)
        if separate(self.config):  # the document's sums over the batch (module docstring); recon, kl per image
            half = len(x) / 2
            decoder = half * recon
            return {"encoder": {"loss": decoder + half * self.config.beta * kl, "kl": kl},
                    "decoder": {"loss": decoder, "recon": recon}}
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
