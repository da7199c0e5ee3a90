"""VAE + adversarial discriminator (the articulated-cuboid thesis), with its discriminator-update strategies.

A VAE (64 px, latent 128) and a convolutional discriminator that judges reconstructions and prior samples against
the data. Two parameter groups:
- ``vae``: summed squared error + beta * KL + adversarial_weight * (the generator's non-saturating loss on its
  reconstructions and prior samples) [+ triplet_weight * the metric triplet loss];
- ``discriminator``: binary cross-entropy of data (1) against reconstructions and prior samples (0).

``update_strategy`` decides, from each batch, which networks step:
- ``both``: both, every step;
- ``inferior``: only the one currently losing: the VAE when the discriminator's verdict on the generated images, as
  it enters the VAE loss (``adversarial``), exceeds the discriminator's own loss (``discriminator/loss``), else the
  discriminator;
- ``probabilistic_inferior``: the same choice drawn at random, the VAE with probability
  adversarial / (adversarial + discriminator loss), from a generator seeded by (decision_seed, step);
- ``accuracy_threshold``: the VAE every step, the discriminator only while its accuracy on the batch (data called
  real, generated images fake, at 0.5) is below ``accuracy_threshold``.

LR reduction is the recipe's ``train.schedule = "step"`` (x ``decay_factor`` after ``decay_at`` of the run).
The optional metric triplet loss pulls latent means together by a factor (default Phi of joint 0): for each anchor
two other samples of the batch are drawn; the one closer to the anchor in the factor is the positive, and
max(0, |mu_a - mu_p| - |mu_a - mu_n| + margin) is averaged over triplets whose factor distances differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from latentds.errors import InvalidParameterError
from latentds.zoo.base import factor_list, images
from latentds.zoo.capabilities import Capabilities
from latentds.zoo.models.vae import VAE, VAEBaseConfig, kl_normal, reparameterise
from latentds.zoo.nets import ConvEncoder

STRATEGIES = ("both", "inferior", "probabilistic_inferior", "accuracy_threshold")


@dataclass(frozen=True)
class VAEDiscConfig(VAEBaseConfig):
    disc_width: int = 32  # channels of the discriminator's first stage
    adversarial_weight: float = 1.0
    update_strategy: str = "both"  # see the module docstring
    accuracy_threshold: float = 0.8  # accuracy_threshold: the discriminator steps while its accuracy is below this
    decision_seed: int = 0  # probabilistic_inferior: draws from (decision_seed, step)
    triplet_weight: float = 0.0  # the metric triplet loss on latent means (0: off)
    triplet_factor: str = "phi_0"  # a factor of the training data (its manifest's table), e.g. a cuboid render's
    triplet_margin: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.update_strategy not in STRATEGIES:
            raise InvalidParameterError(f"model.update_strategy must be one of {', '.join(STRATEGIES)} "
                                        f"(got {self.update_strategy!r})")
        if not 0 < self.accuracy_threshold <= 1:
            raise InvalidParameterError(f"model.accuracy_threshold must be in (0, 1] (got {self.accuracy_threshold})")


class VAEDisc(VAE, family="vae_disc"):
    """The VAE's encoder and decoder, plus a discriminator."""

    Config = VAEDiscConfig
    summary = "VAE + adversarial discriminator (update strategies both/inferior/probabilistic/accuracy, triplet loss)"
    capabilities = Capabilities(posterior=True, groups=("vae", "discriminator"),
                                group_defaults={"discriminator": {"lr": 2e-4, "betas": (0.5, 0.999)}})

    def __init__(self, config: VAEDiscConfig | None = None):
        super().__init__(config)
        c = self.config
        self.discriminator = ConvEncoder(c.image_size, c.channels, c.disc_width, 1)
        self.triplet_column: int | None = None  # the column of triplet_factor in the data: None until bound

    @property
    def factors_read(self) -> dict[str, int | None]:
        return {self.config.triplet_factor: self.triplet_column} if self.config.triplet_weight else {}

    def bind_factors(self, names: list[str]) -> None:
        c = self.config
        if not c.triplet_weight:
            return
        if c.triplet_factor not in names:
            raise InvalidParameterError(f"model.triplet_factor {c.triplet_factor!r} is not a factor of the data (it "
                                        f"has {factor_list(names)}): choose one with --set model.triplet_factor=NAME")
        self.triplet_column = names.index(c.triplet_factor)

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return {"vae": list(self.encoder.parameters()) + list(self.decoder.parameters()),
                "discriminator": list(self.discriminator.parameters())}

    def losses(self, batch, step: int = 0) -> dict[str, dict[str, torch.Tensor]]:
        c = self.config
        x = images(batch)
        mu, logvar = self.posterior(x)
        recon = self.decoder(reparameterise(mu, logvar))
        fake = torch.cat([recon, self.decoder(torch.randn_like(mu))])
        rec = (recon - x).pow(2).flatten(1).sum(1).mean()
        kl = kl_normal(mu, logvar)
        # the generator's loss: the discriminator's verdict on generated images as it enters the VAE loss
        fake_logits = self.discriminator(fake)
        adversarial = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        vae = {"loss": rec + c.beta * kl + c.adversarial_weight * adversarial, "recon": rec, "kl": kl,
               "adversarial": adversarial}
        if c.triplet_weight:
            vae["triplet"] = self.triplet_loss(mu, batch)
            vae["loss"] = vae["loss"] + c.triplet_weight * vae["triplet"]
        real_logits, detached_logits = self.discriminator(x), self.discriminator(fake.detach())
        d_loss = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                        + F.binary_cross_entropy_with_logits(detached_logits, torch.zeros_like(detached_logits)))
        accuracy = torch.cat([(real_logits > 0).float(), (detached_logits < 0).float()]).mean()
        return {"vae": vae, "discriminator": {"loss": d_loss, "accuracy": accuracy}}

    def choose_updates(self, values: dict[str, dict[str, float]], step: int) -> list[str]:
        strategy = self.config.update_strategy
        if strategy == "both":
            return ["vae", "discriminator"]
        if strategy == "accuracy_threshold":
            below = values["discriminator"]["accuracy"] < self.config.accuracy_threshold
            return ["vae", "discriminator"] if below else ["vae"]
        g, d = values["vae"]["adversarial"], values["discriminator"]["loss"]
        if strategy == "inferior":
            return ["vae"] if g > d else ["discriminator"]
        draw = torch.rand((), generator=torch.Generator().manual_seed(self.config.decision_seed * 1_000_003 + step))
        return ["vae"] if float(draw) < g / max(g + d, 1e-12) else ["discriminator"]

    def triplet_loss(self, mu: torch.Tensor, batch) -> torch.Tensor:
        """The metric triplet loss on latent means by ``triplet_factor`` (see the module docstring)."""
        if not isinstance(batch, dict) or "factors" not in batch:
            raise InvalidParameterError("model.triplet_weight needs factor labels: train on a shard set with a factor "
                                        "table (a render, or a pack of a labelled dataset)")
        if self.triplet_column is None:
            raise InvalidParameterError(f"model.triplet_factor {self.config.triplet_factor!r} is not bound to a "
                                        "column: call model.bind_factors(names) with the data's factor names "
                                        "(latentds train does)")
        f = batch["factors"][:, self.triplet_column].float()
        present = batch["factor_mask"][:, self.triplet_column]
        n = len(mu)
        j, k = torch.randint(0, n, (2, n), device=mu.device)
        anchor = torch.arange(n, device=mu.device)
        dj, dk = (f - f[j]).abs(), (f - f[k]).abs()
        positive, negative = torch.where(dj <= dk, j, k), torch.where(dj <= dk, k, j)
        valid = (dj != dk) & present & present[j] & present[k] & (j != anchor) & (k != anchor)
        losses = F.relu((mu - mu[positive]).norm(dim=1) - (mu - mu[negative]).norm(dim=1) + self.config.triplet_margin)
        return (losses * valid).sum() / valid.sum().clamp_min(1)
