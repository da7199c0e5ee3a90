"""End-to-end CNN: regresses the cuboid factors (or classifies a label) straight from the images. No decoder.

Three uses in the studies, one network:

- the E2E baseline: a CNN trained directly on the images for the same label as a latent probe, so the probes of a
  generative model's latents have a ceiling to be read against;
- ``predict(x)`` labels images that have no labels -- the generated samples of gan-walks;
- its penultimate features (``encode(x)``, ``latent_dim`` wide) are the named feature network for FID when no
  Inception weights exist: ``EncoderFeatures(model, name=feature_network_name(model_dir))`` (in
  latentds.analysis.feature_network) names it in tables by family and a content hash of its weights, so two FIDs
  are comparable only when the names agree.

Network: ``ConvEncoder(image_size, channels, width, latent_dim)`` (the zoo's conv stack) -> ReLU: the features ->
dropout -> a linear head with one output per target (regression) or per class (classification).

Regression (``label = ""``, the default): the ``targets`` columns of ``batch["factors"]`` (names from
``latentds.datasets.cuboids.FACTOR_NAMES``; empty = every scalar factor but the colours: n_cuboids, the 9 joint
angles, light azimuth/elevation/intensity, n_spot_lights, n_point_lights), each normalised to [0, 1] by its range
in the factor table (``latentds.render.factors.FACTORS``; joint angles by ``ANGLES``). Loss: mean squared error
over the entries a sample has (``factor_mask``: the joints past a shorter chain's end do not count); terms
``"loss"`` and ``"mse"`` (equal). ``light_azimuth`` is regressed as a number in 0..360, not on the circle: 359
and 1 degrees count as far apart. ``attributes``: 0..1 factors of other data regressed after the targets (e.g.
CelebA's ``Eyeglasses``, ``Smiling``, to label generated faces for gan-walks' arithmetic; with attributes and no
targets, no cuboid factor is regressed). A model starts unbound: the columns of targets and attributes alike are
the data's own, bound by name (``bind_factors``, which training calls with the set's factor table).

Classification (``label`` set, e.g. "identity" of a ``--identities`` render or UTKFace's "gender"): the integer
``batch["labels"][i][label]`` in 0..n_classes-1, cross-entropy; terms ``"loss"`` and ``"accuracy"``. ``targets``
is then ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from latentds.datasets.cuboids import FACTOR_NAMES
from latentds.errors import InvalidParameterError
from latentds.render.factors import FACTORS
from latentds.zoo.base import LatentModel, ModelConfig, factor_list, images
from latentds.zoo.capabilities import Capabilities
from latentds.zoo.nets import ConvEncoder

def _ranges() -> dict[str, tuple[float, float]]:
    """(low, high) of every FACTOR_NAMES entry, colours expanded into _r/_g/_b like the factor vector."""
    ranges = {}
    for f in FACTORS:
        for name in ([f"{f.name}_{c}" for c in "rgb"] if f.type == "rgb" else [f.name]):
            ranges[name] = (float(f.low), float(f.high))
    assert list(ranges) == list(FACTOR_NAMES)
    return ranges


RANGES = _ranges()
DEFAULT_TARGETS: tuple[str, ...] = tuple(n for n in FACTOR_NAMES if not n.startswith(("color_", "light_color_")))


@dataclass(frozen=True)
class E2ECNNConfig(ModelConfig):
    latent_dim: int = 256  # width of the penultimate features: what encode() returns, the FID features
    width: int = 32  # channels of the first conv stage; doubles per stage
    dropout: float = 0.0  # before the head, while training
    targets: tuple[str, ...] = ()  # factors to regress (FACTOR_NAMES); empty: every scalar factor but colours
    attributes: tuple[str, ...] = ()  # 0..1 factors of the data (e.g. CelebA's Eyeglasses), bound by name
    label: str = ""  # set: classify this integer label of batch["labels"] instead (targets ignored)
    n_classes: int = 0  # classes of `label` (at least 2 when label is set)

    def __post_init__(self):
        super().__post_init__()
        if self.width < 1:
            raise InvalidParameterError(f"model.width must be at least 1 (got {self.width})")
        if not 0 <= self.dropout < 1:
            raise InvalidParameterError(f"model.dropout must be from 0 to below 1 (got {self.dropout})")
        unknown = [t for t in self.targets if t not in FACTOR_NAMES]
        if unknown:
            raise InvalidParameterError(f"model.targets: {', '.join(map(repr, unknown))} "
                                        f"{'is not a cuboid factor' if len(unknown) == 1 else 'are not cuboid factors'}"
                                        f"; choose from: {', '.join(FACTOR_NAMES)}")
        if len(set(self.targets)) != len(self.targets):
            raise InvalidParameterError(f"model.targets names a factor twice: {list(self.targets)}")
        twice = [a for a in self.attributes if a in FACTOR_NAMES or self.attributes.count(a) > 1]
        if twice:
            raise InvalidParameterError(f"model.attributes: {twice[0]!r} is a cuboid factor (name it in model.targets)"
                                        if twice[0] in FACTOR_NAMES else
                                        f"model.attributes names {twice[0]!r} twice: {list(self.attributes)}")
        if self.label and self.n_classes < 2:
            raise InvalidParameterError(f"model.label {self.label!r} needs model.n_classes, the number of its "
                                        f"classes, at least 2 (got {self.n_classes})")


class E2ECNN(LatentModel, family="e2e_cnn"):
    Config = E2ECNNConfig
    summary = ("end-to-end CNN: regresses cuboid factors (or classifies a label) from images; the FID feature "
               "network and the probes' ceiling")
    capabilities = Capabilities(decoder=False)
    card_usage: ClassVar[str] = (
        "An end-to-end CNN trained directly on the images, with no decoder (`decode` and `sample` raise). "
        "`model.predict(images)` gives its predictions in the targets' units (class probabilities with "
        "`label`): the E2E baseline that latent probes are read against, and the labeller of generated samples "
        "for latent walks. `model.encode(images)` gives its penultimate features, the feature network for FID "
        "when no Inception weights exist; name it in tables with "
        "`latentds.analysis.feature_network.feature_network_name(DIRECTORY)` (`e2e_cnn@` and the first 12 hex digits "
        "of the SHA-256 of model.safetensors), so that FIDs are compared only under the same network.")

    def __init__(self, config: E2ECNNConfig | None = None):
        super().__init__(config)
        c = self.config
        cuboid = tuple(c.targets) or (() if c.attributes else DEFAULT_TARGETS)
        self.targets = () if c.label else cuboid + tuple(c.attributes)
        self.backbone = ConvEncoder(c.image_size, c.channels, c.width, c.latent_dim)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.latent_dim, c.n_classes if c.label else len(self.targets))
        columns = [-1] * len(self.targets)  # unbound (-1) until bind_factors takes the data's columns by name
        low = torch.tensor([RANGES.get(t, (0.0, 1.0))[0] for t in self.targets])
        span = torch.tensor([RANGES.get(t, (0.0, 1.0))[1] - RANGES.get(t, (0.0, 1.0))[0] for t in self.targets])
        # derived from the config, so not saved with the weights
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.long), persistent=False)
        self.register_buffer("low", low, persistent=False)
        self.register_buffer("span", span, persistent=False)

    @property
    def factors_read(self) -> dict[str, int | None]:
        return {t: (j if j >= 0 else None) for t, j in zip(self.targets, self.columns.tolist())}

    def bind_factors(self, names: list[str]) -> None:
        missing = [t for t in self.targets if t not in names]
        if missing:
            raise InvalidParameterError(f"e2e_cnn regresses {_named(missing)}, not factors of the data (it has "
                                        f"{factor_list(names)}): regression targets are cuboid factors; to learn a "
                                        "label of other data, classify it: --set model.label=NAME --set "
                                        "model.n_classes=K")
        self.columns = torch.tensor([names.index(t) for t in self.targets], dtype=torch.long,
                                    device=self.columns.device)

    @property
    def output_names(self) -> list[str]:
        """What each column of ``predict`` is: the target factors, or ``label=k`` per class."""
        c = self.config
        return [f"{c.label}={k}" for k in range(c.n_classes)] if c.label else list(self.targets)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, S, S) in [-1, 1] -> the penultimate features (N, latent_dim): the FID feature network."""
        return F.relu(self.backbone(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The head's raw outputs: normalised targets (about [0, 1]) or class logits."""
        return self.head(self.dropout(self.encode(x)))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> (N, len(output_names)): each target in its own units (degrees, counts, ...) or, with
        ``label``, the class probabilities. Call ``model.eval()`` first (batch norm, dropout)."""
        out = self.logits(x).float()
        return out.softmax(1) if self.config.label else out * self.span + self.low

    def losses(self, batch, step: int = 0) -> dict[str, dict[str, torch.Tensor]]:
        return {"model": self._terms(batch)}

    def _terms(self, batch) -> dict[str, torch.Tensor]:
        """The one group's terms: cross-entropy and accuracy (``label``) or the masked regression MSE."""
        c = self.config
        x = images(batch)
        if c.label:
            y = self._label_values(batch).to(x.device)
            logits = self.logits(x).float()
            return {"loss": F.cross_entropy(logits, y), "accuracy": (logits.argmax(1) == y).float().mean()}
        if not isinstance(batch, dict) or "factors" not in batch:
            raise InvalidParameterError(f"{self.family}: this data has no cuboid factors to regress; to train on "
                                        "a labelled dataset set model.label (an integer label such as identity or "
                                        "gender) and model.n_classes")
        if (self.columns < 0).any():
            unbound = [t for t, j in zip(self.targets, self.columns.tolist()) if j < 0]
            raise InvalidParameterError(f"{self.family}: {_named(unbound)} not bound to the data's "
                                        "factors yet: call model.bind_factors(names) with the data's factor names "
                                        "(latentds train does)")
        y = (batch["factors"][:, self.columns].float() - self.low) / self.span
        mask = batch["factor_mask"][:, self.columns].float()
        error = (self.logits(x).float() - y).pow(2) * mask
        mse = error.sum() / mask.sum().clamp_min(1.0)
        return {"loss": mse, "mse": mse}

    def _label_values(self, batch) -> torch.Tensor:
        c = self.config
        labels = batch.get("labels") if isinstance(batch, dict) else None
        if labels is None:
            raise InvalidParameterError(f"{self.family}: model.label is {c.label!r} but the batch has no labels")
        values = [row.get(c.label) for row in labels]
        if None in values:
            known = ", ".join(sorted(labels[0])) if len(labels) else "none"
            raise InvalidParameterError(f"{self.family}: no label {c.label!r} in this data; its labels: {known}")
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < c.n_classes]
        if bad:
            raise InvalidParameterError(f"{self.family}: label {c.label!r} must be an integer 0..{c.n_classes - 1} "
                                        f"(model.n_classes {c.n_classes}); got {bad[0]!r}")
        return torch.tensor(values, dtype=torch.long)


def _named(names: list[str]) -> str:
    """The first three names quoted, and how many more: one line however many targets a model has."""
    return ", ".join(map(repr, names[:3])) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
