"""``Context``: what every probe receives -- the model, the analysis' options (``ctx.options``, an
latentds.analysis.options.AnalysisOptions), the models beside it (``feature_model``, ``labeller``) and the shared
inputs, each prepared once per analysis.

    Context(model, "data/varied", out, AnalysisOptions(n=500), feature_model=None, labeller=None)

The model is put in eval mode and its device looked up here, once (``ctx.device``); a feature model likewise. The
shared inputs are computed the first time a probe asks and kept for every later probe, whatever the probe order:

- ``ctx.codes``: the latents of the data (latentds.analysis.encode; None for a model without an encoder);
- ``ctx.images()``: ONE batch of the data's first ``min(n, images)`` images (the options' n and images) at the
  model's image size, and
  ``ctx.reconstructions()`` of it (the reconstruction metrics use the first METRIC_IMAGES of both, FID all);
- ``ctx.reference_images()``: the next batch of the same stream, disjoint from ``images()``: up to as many of the
  data's following images (fewer, or none, when the data end first), FID's real-vs-real floor;
- ``ctx.sequences()``: the first ``sequence_groups`` groups of the ``--sequence`` set (``sequence_data``, else the
  data itself), resized to the model's image size the way ``load_shards`` resizes;
- ``ctx.interpolations()``: the natural, linear and spherical paths of each of those groups
  (latentds.analysis.interpolation.interpolation_probe), which the interpolation probe reports and the UMAP
  overlays (group 0).

An input that cannot be prepared raises ``Skip`` with the true reason, remembered, so every probe asking for it
is skipped in the same words. This module imports nothing heavy (torch only inside the methods).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from latentds.analysis.device import ready
from latentds.analysis.options import AnalysisOptions
from latentds.analysis.registry import NEEDS, Skip

if TYPE_CHECKING:
    from latentds.analysis.encode import Codes

METRIC_IMAGES = 256  # the reconstruction metrics: the first this many of the shared image batch
RECONSTRUCT_CHUNK = 256  # images per reconstruction forward pass


@dataclass
class Context:
    model: object
    data: str
    out: Path
    options: AnalysisOptions = field(default_factory=AnalysisOptions)
    feature_model: object = None  # a model whose encoder gives the FID features (default: the packaged network)
    labeller: object = None  # a model with ``predict`` that labels generated samples (default: feature_model's)
    codes: Codes | None = None  # the latents of the data (run fills them; None for a model without an encoder)
    figures_dir: Path = field(init=False)
    device: object = field(init=False)
    _prepared: dict = field(init=False, default_factory=dict, repr=False)
    _batches: object = field(init=False, default=None, repr=False)  # the image stream, after images()'s batch

    def __post_init__(self):
        self.out = Path(self.out)
        self.figures_dir = self.out / "figures"
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        self.device = ready(self.model)
        if self.feature_model is not None:
            self.feature_model = self.feature_model.to(self.device)
            ready(self.feature_model)
        if self.labeller is not None:
            self.labeller = self.labeller.to(self.device)
            ready(self.labeller)

    # --- the shared inputs, each prepared once -------------------------------------------------------------------
    def _once(self, key: str, prepare):
        """``prepare()`` the first time ``key`` is asked for; its value (or its Skip) every time after."""
        if key not in self._prepared:
            try:
                self._prepared[key] = (prepare(), None)
            except Skip as why:
                self._prepared[key] = (None, why)
        value, skip = self._prepared[key]
        if skip is not None:
            raise Skip(str(skip))
        return value

    def need_codes(self) -> Codes:
        """The latents of the data; Skip (the encoder need's reason) for a model without an encoder."""
        if self.codes is None:
            raise Skip(NEEDS["encoder"].reason.format(family=self.model.family))
        return self.codes

    def images(self):
        """(N, 3, S, S) float CPU tensor: the data's first min(n, images) images at the model's size S."""
        return self._once("images", self._load_images)

    def _load_images(self):
        from latentds.datasets.shards import load_shards, resize_for  # noqa: PLC0415

        size = self.model.config.image_size
        stream = load_shards(self.data, batch_size=min(self.options.n, self.options.images), partial=True,
                             size=resize_for(self.data, size))
        self._batches = iter(stream)  # reference_images() reads on from here: one pass over the data
        return next(self._batches)["image"]

    def reference_images(self):
        """(M, 3, S, S): the min(n, images) images after those of ``images()`` (M is smaller, down to 0, when the
        data hold fewer): a real set disjoint from ``images()``, for FID's real-vs-real floor."""
        return self._once("reference_images", self._load_reference)

    def _load_reference(self):
        import torch  # noqa: PLC0415

        images = self.images()
        batch = next(self._batches, None)
        self._batches = None  # nothing reads further: let the stream close
        return batch["image"] if batch is not None else torch.empty((0, *images.shape[1:]))

    def reconstructions(self):
        """The model's reconstructions of ``images()`` (float, CPU); Skip for a model without an encoder."""
        self.need_codes()
        return self._once("reconstructions", self._reconstruct)

    def _reconstruct(self):
        import torch  # noqa: PLC0415

        with torch.no_grad():
            return torch.cat([self.model.reconstruct(chunk.to(self.device)).float().cpu()
                              for chunk in self.images().split(RECONSTRUCT_CHUNK)])

    def baselines(self) -> dict:
        """analysis.health.image_baselines of the first METRIC_IMAGES images and their reconstructions: the
        model's MSE / SSIM (whole image and foreground) beside trivial reconstructions' (prepared once)."""
        return self._once("baselines", self._baselines)

    def _baselines(self) -> dict:
        from latentds.analysis.health import image_baselines  # noqa: PLC0415

        return image_baselines(self.images()[:METRIC_IMAGES], self.reconstructions()[:METRIC_IMAGES])

    def sequences(self) -> list[dict]:
        """The first ``sequence_groups`` groups (fewer if the set has fewer) of the sequence set, as
        latentds.sequence_groups gives them but with images at the model's size. Skip with the reason when there is
        no sequence set or it cannot be read."""
        return self._once("sequences", self._load_sequences)

    def _load_sequences(self) -> list[dict]:
        from latentds.datasets.sequences import sequence_groups  # noqa: PLC0415

        if not NEEDS["sequences"].present(self):
            raise Skip(NEEDS["sequences"].reason)
        source = self.options.sequence_data or self.data
        try:
            groups = list(islice(sequence_groups(source), self.options.sequence_groups))
        except Exception as e:  # noqa: BLE001  (damaged or incomplete: say what, keep the other probes going)
            raise Skip(f"cannot read the groups of the sequence set {source}: {e}") from None
        if not groups:
            raise Skip(f"the sequence set {source} holds no complete group")
        size = self.model.config.image_size
        return [{**g, "images": resized(g["images"], size)} for g in groups]

    def interpolations(self) -> list[dict]:
        """interpolation_probe's result (paths, decoded images, errors) for each group of ``sequences()``."""
        self.need_codes()
        return self._once("interpolations", self._interpolate)

    def _interpolate(self) -> list[dict]:
        from latentds.analysis.interpolation import interpolation_probe  # noqa: PLC0415

        return [{"group": g["group"], **interpolation_probe(self.model, g)} for g in self.sequences()]

    def interpolation_paths(self) -> dict:
        """{"natural", "linear", "spherical": (K, D) numpy latents} of the first sequence group, or {} when there
        is no sequence set (for overlays, which are optional). Encoding only: a model without a decoder has them
        too (the interpolation probe's decoded images are not needed for them)."""
        try:
            if self._prepared.get("interpolations", (None, None))[0]:  # the interpolation probe ran: its paths
                first = self.interpolations()[0]
                return {k: first[k].numpy() for k in ("natural", "linear", "spherical")}
            self.need_codes()
            groups = self.sequences()
        except Skip:
            return {}
        from latentds.analysis.interpolation import latent_paths  # noqa: PLC0415

        paths = self._once("paths", lambda: latent_paths(self.model, groups[0]))
        return {k: z.cpu().numpy() for k, z in paths.items()}

    # --- output ----------------------------------------------------------------------------------------------------
    def grid(self, images, name: str, nrow: int) -> str:
        """Save ``images`` ([-1, 1]) as figures/``name``, ``nrow`` to a row; returns ``name``."""
        from torchvision.utils import save_image  # noqa: PLC0415

        from latentds.shardsets.atomic import atomic_path  # noqa: PLC0415

        with atomic_path(self.figures_dir / name) as tmp:  # a full disk leaves no half-written figure
            save_image(images.float().clamp(-1, 1) * 0.5 + 0.5, tmp, nrow=nrow, padding=1,
                       format=Path(name).suffix.lstrip(".") or "png")
        return name


def resized(images, size: int):
    """(K, 3, H, W) images in [-1, 1] at ``size`` x ``size``, resized as ``load_shards(size=...)`` resizes (PIL
    bilinear on the 8-bit pixels); unchanged when they have that size already."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    from latentds.datasets.transforms import ImageTransform  # noqa: PLC0415

    transform = ImageTransform(size=size)
    pixels = images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return torch.stack([transform(Image.fromarray(np.ascontiguousarray(p))) for p in pixels])
