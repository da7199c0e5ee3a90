"""Clamped VAE (DC-IGN, Kulkarni et al. 2015; "ModVAE"): latent units assigned to factors, trained on groups in
which one factor moves.

The recipe assigns ``units_per_factor`` latent units to each name of ``factors`` in order (factor k owns units
k*u .. k*u+u-1); the remaining units are free. Batches are groups of a ``latentds render --sequence`` set
(``Capabilities(batches="groups")``): within a group only one factor varies. Every unit not owned by that
factor -- the other factors' and the free ones -- is replaced by its mean over the group before decoding, so only
the varying factor's units can explain the differences between the group's images, and clamp_weight x the squared distance of those
units to their group mean pulls the encoder's codes together (DC-IGN's "clamped" gradient, as a loss).
A group whose factor the model does not own clamps every unit (like DC-IGN's batches of a factor left free).
Loss: summed squared error + beta * KL + clamp_weight * clamp term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latentds.errors import InvalidParameterError
from latentds.zoo.base import images
from latentds.zoo.capabilities import Capabilities
from latentds.zoo.models.vae import VAE, VAEBaseConfig, kl_normal, reparameterise


@dataclass(frozen=True)
class ClampedVAEConfig(VAEBaseConfig):
    latent_dim: int = 32
    factors: tuple[str, ...] = ("phi_0", "theta_0", "lambda_0", "light_azimuth")
    units_per_factor: int = 2
    clamp_weight: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        need = len(self.factors) * self.units_per_factor
        if self.units_per_factor < 1 or need > self.latent_dim:
            raise InvalidParameterError(f"model.factors x model.units_per_factor ({need} units) must fit in "
                                        f"model.latent_dim ({self.latent_dim}), at least one unit each")
        if len(set(self.factors)) != len(self.factors):
            raise InvalidParameterError(f"model.factors names a factor twice: {list(self.factors)}")


class ClampedVAE(VAE, family="clamped_vae"):
    """The VAE's encoder and decoder, trained with clamped units."""

    Config = ClampedVAEConfig
    summary = "clamped VAE (DC-IGN, Kulkarni et al. 2015): units per factor, trained on one-factor sequence groups"
    capabilities = Capabilities(posterior=True, batches="groups")

    def units(self, factor: str) -> slice | None:
        """The latent units owned by ``factor`` (None if the model has none for it)."""
        if factor not in self.config.factors:
            return None
        k, u = self.config.factors.index(factor), self.config.units_per_factor
        return slice(k * u, (k + 1) * u)

    def clamp(self, z: torch.Tensor, group: torch.Tensor, varying: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(z with every unit but the varying factor's replaced by its group mean, the mask of clamped units).

        group: (N,) group index of each row; varying: the factor that moves in each group (by group index)."""
        n_groups = int(group.max()) + 1
        one_hot = torch.nn.functional.one_hot(group, n_groups).to(z.dtype)  # (N, G)
        means = (one_hot.T @ z) / one_hot.sum(0).unsqueeze(1)  # (G, D)
        clamped = torch.ones(n_groups, z.shape[1], dtype=torch.bool, device=z.device)
        for g, factor in enumerate(varying):
            own = self.units(factor)
            if own is not None:
                clamped[g, own] = False
        mask = clamped[group]
        return torch.where(mask, means[group], z), mask

    def losses(self, batch, step: int = 0) -> dict[str, dict[str, torch.Tensor]]:
        c = self.config
        x = images(batch)
        mu, logvar = self.posterior(x)
        z = reparameterise(mu, logvar)
        if isinstance(batch, dict) and "group" in batch:
            ids = batch["group"]
            varying = _group_factors(batch["labels"], ids)
            z_clamped, mask = self.clamp(z, ids, varying)
            clamp = ((z - z_clamped).pow(2) * mask).sum(1).mean()
            z = z_clamped
        else:  # plain batches (e.g. a validation set without groups): an ordinary VAE step
            clamp = torch.zeros((), device=x.device)
        recon = (self.decoder(z) - x).pow(2).flatten(1).sum(1).mean()
        kl = kl_normal(mu, logvar)
        return {"model": {"loss": recon + c.beta * kl + c.clamp_weight * clamp, "recon": recon, "kl": kl,
                          "clamp": clamp}}


def _group_factors(labels, ids: torch.Tensor) -> list[str]:
    """The factor each group moves, from the first label of each group (labels["sequence"]["factor"])."""
    firsts: dict[int, str] = {}
    for label, g in zip(labels, ids.tolist()):
        if g not in firsts:
            sequence = label.get("sequence") or {}
            if "factor" not in sequence:
                raise InvalidParameterError("clamped_vae trains on groups of a `latentds render --sequence` set "
                                            "(data.batches = \"groups\"); these labels name no sequence factor")
            firsts[g] = sequence["factor"]
    return [firsts[g] for g in range(len(firsts))]
