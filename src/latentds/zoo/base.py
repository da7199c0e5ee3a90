"""LatentModel: the one base class of the zoo, its family registry, and saving/loading (safetensors + JSON, never
pickle) through huggingface_hub's ModelHubMixin hooks.

A family is one file: a frozen config dataclass and a LatentModel subclass that registers itself,

    @dataclass(frozen=True)
    class VAEConfig(ModelConfig):
        beta: float = 1.0

    class VAE(LatentModel, family="vae"):
        Config = VAEConfig

and declares what it can do and trains on as one ``capabilities = Capabilities(...)`` (zoo/capabilities.py; read
through ``capabilities_of``). The interface a family implements (the batch it sees, ``parameter_groups``, the one
abstract training method ``losses(batch, step) -> {group: {"loss": ..., other terms}}``, ``choose_updates``) and
how saving and loading work are written once, in ARCHITECTURE.md, "Models". What the model card says beyond the
model itself (title, recipe, data, metrics) is passed explicitly, as a card.py ``CardInfo``:
``save_pretrained(path, model_card_kwargs={"card": CardInfo(...)})`` (the mixin's channel for card arguments).
Families register in ``REGISTRY`` (a latentds.registry.Registry, filled on first use by importing every module of
zoo/models: zoo/names.py's ``FAMILY_MODULES``); a Hub id is fetched by zoo/hub.py, which holds all Hub network
I/O; the card is card.py's.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from torch import nn

from latentds.errors import HubError, InvalidParameterError, OutputDirectoryError, first_line
from latentds.registry import Registry
from latentds.shardsets.atomic import atomic_path, default_mode
from latentds.zoo.capabilities import FORMER_NAMES, Capabilities, capabilities_of
from latentds.zoo.config import from_dict, to_dict
from latentds.zoo.finite import nonfinite_tensors
from latentds.zoo.hub import CONFIG, WEIGHTS, download_model
from latentds.zoo.names import FAMILY_MODULES


if TYPE_CHECKING:
    from latentds.zoo.card import CardInfo

REGISTRY: Registry[type[LatentModel]] = Registry("model family", discover=FAMILY_MODULES)


@dataclass(frozen=True)
class ModelConfig:
    """Fields every family has. ``family`` is filled in by the model class."""

    family: str = ""
    image_size: int = 64
    channels: int = 3
    latent_dim: int = 128

    def __post_init__(self):
        for name, low in (("image_size", 8), ("channels", 1), ("latent_dim", 1)):
            if getattr(self, name) < low:
                raise InvalidParameterError(f"model.{name} must be at least {low} (got {getattr(self, name)})")
        # every family's sizes by the names they share: widths (channels of a network) and dimensions
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if (f.name == "width" or f.name.endswith(("_width", "_dim"))) and isinstance(value, int) and value < 1:
                raise InvalidParameterError(f"model.{f.name} must be at least 1 (got {value})")
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidParameterError(f"model.{f.name} must be a finite number (got {value})")


class LatentModel(nn.Module, PyTorchModelHubMixin, metaclass=abc.ABCMeta):
    """Base class: see the module docstring. Subclasses set ``Config`` and pass ``family=`` when subclassing."""

    family: ClassVar[str] = ""
    Config: ClassVar[type] = ModelConfig
    capabilities: ClassVar[Capabilities] = Capabilities()  # what it can do and trains on: zoo/capabilities.py
    summary: ClassVar[str] = ""  # one line for `latentds zoo` and the model card
    card_usage: ClassVar[str] = ""  # Markdown for a "## Use" section of the model card, where a family needs one

    @property
    def factors_read(self) -> dict[str, int | None]:
        """The factor-vector columns this model reads from ``batch["factors"]``, by name: {name: column}, the
        column None until ``bind_factors`` has bound it. Empty (the default) for models that read no factors."""
        return {}

    def bind_factors(self, names: list[str]) -> None:
        """Take the columns of the factors this model reads from the data's factor names (the expanded table of
        the set it trains on); the trainer always calls it before training. Models that read factors override it
        and raise InvalidParameterError, in one line, when the data lacks one. A model starts unbound: it reads
        no column before this is called."""

    def __init_subclass__(cls, family: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        former = sorted(set(FORMER_NAMES) & set(vars(cls)))
        if former:  # a declaration that would otherwise be ignored without a word
            raise TypeError(f"{cls.__name__} declares {', '.join(former)} as class attributes: declare capabilities "
                            f"as capabilities = Capabilities({', '.join(FORMER_NAMES[n] + '=...' for n in former)})")
        if not isinstance(cls.capabilities, Capabilities):
            raise TypeError(f"{cls.__name__}.capabilities must be a Capabilities, not "
                            f"{type(cls.capabilities).__name__}")
        if family:
            REGISTRY.add(family, cls)  # RegistrationError (a TypeError) on an invalid or taken name
            cls.family = family

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        config = config if config is not None else self.Config()
        if not isinstance(config, self.Config):
            raise InvalidParameterError(f"{type(self).__name__} needs a {self.Config.__name__}, "
                                        f"not {type(config).__name__}")
        self.config = replace(config, family=self.family)  # config.json: see _save_pretrained
        self.capabilities = type(self).capabilities_for(self.config)  # this model's (an option may change them)

    @classmethod
    def capabilities_for(cls, config: ModelConfig) -> Capabilities:
        """The capabilities of this family's model with ``config``: the family's declared ``capabilities`` unless
        one of its options changes them (the vae's ``optimisers = "separate"`` declares two groups). A recipe's
        [train.groups] is checked against them without building the model."""
        return cls.capabilities

    # --- the interface every family implements -----------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, S, S) in [-1, 1] -> latent codes (N, latent_dim) (posterior means for VAEs)."""
        raise InvalidParameterError(f"{self.family} has no encoder")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (N, latent_dim) -> images (N, C, S, S) in [-1, 1]."""
        raise InvalidParameterError(f"{self.family} has no decoder")

    @abc.abstractmethod
    def losses(self, batch: dict | torch.Tensor, step: int = 0) -> dict[str, dict[str, torch.Tensor]]:
        """The loss terms of every parameter group for one batch (a collated batch dict or an image tensor) at
        training step ``step``, from one forward pass: {group: {"loss": the total that group's optimiser minimises,
        other named terms}}, one entry per group of ``parameter_groups`` ({"model": {...}} for one group). The one
        training method: the trainer, validation and tests all call it."""

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimiser, in update order (one group, "model", unless a family needs more): the groups
        its ``Capabilities.groups`` declares, in that order (the trainer checks)."""
        return {"model": list(self.parameters())}

    def choose_updates(self, values: dict[str, dict[str, float]], step: int) -> list[str]:
        """The groups to update at ``step``, given this batch's loss values {group: {term: float}} (averaged over
        DDP ranks, so every rank decides the same). Every group, every step, by default."""
        return list(values)

    # --- derived ---------------------------------------------------------------------------------------------
    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latent codes from the prior (N(0, I) unless a family says otherwise), on the model's device."""
        device = next(self.parameters()).device
        return torch.randn(n, self.config.latent_dim, generator=generator, device="cpu").to(device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images decoded from the prior."""
        return self.decode(self.prior(n, generator))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # --- saving and loading: huggingface_hub's ModelHubMixin hooks -------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        """The mixin's save hook (its ``save_pretrained`` calls it): model.safetensors (the mixin's PyTorch writer)
        and config.json (``self.config``, family included, as the mixin writes a config: sorted keys, indent 2),
        each replacing an older file; an older README.md is removed, so that the mixin then writes no config of its
        own and the card anew from ``generate_model_card``. What the card says beyond the model itself (title,
        recipe, data, metrics) is passed explicitly, through the mixin's own channel for card arguments:
        ``model.save_pretrained(path, model_card_kwargs={"card": CardInfo(...)})``."""
        super()._save_pretrained(save_directory)
        default_mode(save_directory / WEIGHTS)
        (save_directory / CONFIG).write_text(json.dumps(to_dict(self.config), sort_keys=True, indent=2),
                                             encoding="utf-8")
        (save_directory / "README.md").unlink(missing_ok=True)

    def generate_model_card(self, card: CardInfo | None = None, **kwargs) -> ModelCard:
        """The mixin's card hook (``save_pretrained`` calls it with its ``model_card_kwargs``): latentds's card
        (card.py; its metadata is a ModelCardData) with what ``card`` (a CardInfo) says; without one the card
        describes the model alone. Other template arguments are ignored."""
        from latentds.zoo.card import model_card  # noqa: PLC0415

        return ModelCard(model_card(self, card))

    def push_to_hub(self, repo_id: str, *, private: bool = False, card: CardInfo | None = None, config=None,
                    model_card_kwargs=None) -> str:
        """Save this model (``save_pretrained``, its card saying what ``card`` says) into a temporary directory and
        upload it to Hub repo ``repo_id`` with zoo/hub.py's ``push_model`` (token and reachability checked first,
        one-line errors); return the repo URL. The mixin's ``save_pretrained(push_to_hub=True)`` passes its
        ``model_card_kwargs`` (and so their ``card``) on; ``config`` is ignored: config.json is always
        ``self.config``."""
        import tempfile  # noqa: PLC0415

        from latentds.zoo.hub import push_model  # noqa: PLC0415

        card = card if card is not None else (model_card_kwargs or {}).get("card")
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, model_card_kwargs={"card": card})
            return push_model(tmp, repo_id, private=private)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, revision: str | None = None,
                        device: str = "cpu") -> LatentModel:
        """A model saved by ``save_pretrained`` (see ``latentds.from_pretrained``), of the family its config names;
        on a family's class, a model of another family is an error.

        The source is resolved first (``_model_directory``: a local directory, or a Hub id fetched by zoo/hub.py),
        its config.json read and checked, then the mixin's ``from_pretrained`` runs on that directory with the
        config, and calls ``_from_pretrained`` -- the mixin's own resolution would take any missing path for a Hub
        id and download without the offline and reachability checks."""
        directory = _model_directory(pretrained_model_name_or_path, revision)
        config = _read_config(directory / CONFIG)
        return super().from_pretrained(directory, revision=revision, config=config, map_location=device)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir, force_download: bool,
                         local_files_only: bool, token, config: dict, map_location: str = "cpu",
                         **from_config) -> LatentModel:
        """The mixin's load hook: ``model_id`` is a local directory (``from_pretrained`` resolved it), ``config``
        its config.json as a dict. Builds the family's class from the config (strictly: unknown keys and wrong
        types are errors) and reads the weights with safetensors only, every key required."""
        from safetensors import SafetensorError  # noqa: PLC0415
        from safetensors.torch import load_model  # noqa: PLC0415

        # the mixin copies config keys that share a name with an __init__ parameter into the keyword arguments;
        # they are in ``config`` already (and checked there)
        extra = sorted(set(from_config) - set(config))
        if extra:
            raise TypeError(f"{cls.__name__}.from_pretrained got unexpected keyword arguments {extra}")
        config_file, weights = Path(model_id) / CONFIG, Path(model_id) / WEIGHTS
        family = REGISTRY.get(config.get("family"), where=str(config_file))
        if not issubclass(family, cls):
            raise InvalidParameterError(f"{model_id} holds a {family.family} model, not {cls.family or cls.__name__}")
        try:
            model = create(family.family, **config)
        except InvalidParameterError as e:  # a config that fails its checks, or too large for this machine
            raise InvalidParameterError(f"{config_file}: {e}") from None
        try:
            _check_dtypes(model, weights)
            missing, unexpected = load_model(model, str(weights), strict=False)
        except (SafetensorError, OSError) as e:  # truncated, empty, or not a safetensors file
            raise InvalidParameterError(f"cannot read {weights} ({first_line(e)}): it is damaged or not a "
                                        "safetensors file; save, train or download the model again") from None
        except RuntimeError as e:  # shapes that do not fit the config
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise InvalidParameterError(f"{weights} does not fit {model.family} with {config_file}: "
                                        f"{lines[1] if len(lines) > 1 else first_line(e)}") from None
        if missing or unexpected:
            raise InvalidParameterError(f"{weights} does not fit {model.family}: missing {sorted(missing)[:3]}, "
                                        f"unexpected {sorted(unexpected)[:3]}")
        state = model.state_dict()
        bad = nonfinite_tensors(state)
        if bad:
            raise InvalidParameterError(f"{weights} holds non-finite weights (NaN or infinite values in {len(bad)} of "
                                        f"{len(state)} tensors, e.g. {bad[0]}): the training that wrote it diverged; "
                                        "train it again, e.g. with a lower train.lr")
        return model.to(map_location).eval()


SAFETENSORS_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
                      torch.bool: "BOOL"}


def _check_dtypes(model: LatentModel, weights: Path) -> None:
    """Every tensor of ``weights`` in the dtype the model holds it in (as latentds writes them): load_state_dict
    would cast int64, bool or float16 weights of the right shapes without a word."""
    from safetensors import safe_open  # noqa: PLC0415

    own = model.state_dict()
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            if key in own:
                have, want = f.get_slice(key).get_dtype(), SAFETENSORS_DTYPES.get(own[key].dtype, str(own[key].dtype))
                if have != want:
                    raise InvalidParameterError(f"{weights}: tensor {key} is {have}, where {model.family} holds "
                                                f"{want}: latentds never writes it so; save, train or download the "
                                                "model again")


# --- sample grids ---------------------------------------------------------------------------------------------------

GRID_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                ".tiff": "TIFF"}
MAX_GRID_PIXELS = 89_478_485  # PIL's Image.MAX_IMAGE_PIXELS: a larger image warns, twice as large fails, on opening
GRID_PADDING = 2  # torchvision's make_grid default


def factor_list(names: list[str], most: int = 12) -> str:
    """The data's factor names for a one-line message: the first ``most``, then "...". """
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def check_grid_file(path: str | os.PathLike) -> tuple[Path, str]:
    """(path, PIL format) of an image file that can be written; a clear error, before any work, if it cannot."""
    path = Path(path).expanduser()
    kind = GRID_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InvalidParameterError(f"--out {path}: unknown image type {path.suffix or '(no extension)'}; end the "
                                    f"name in {', '.join(GRID_FORMATS)}")
    if path.is_dir():
        raise OutputDirectoryError(f"--out {path} is a directory; give a file name such as {path / 'samples.png'}")
    if not path.parent.is_dir():
        raise OutputDirectoryError(f"--out {path}: directory {path.parent} does not exist; create it or choose "
                                   "another --out")
    probe = path.with_name(f".{path.name}.partial")
    try:
        with open(probe, "wb"):
            pass
        probe.unlink()
    except OSError as e:
        raise OutputDirectoryError(f"cannot write --out {path} ({e.strerror or e}); choose a writable location"
                                   ) from None
    return path, kind


@torch.no_grad()
def save_sample_grid(model: LatentModel, n: int, path: str | os.PathLike, *, seed: int = 0,
                     chunk: int = 256) -> Path:
    """Decode ``n`` samples from ``model``'s prior (seeded by ``seed``) into an image grid at ``path`` (as
    torchvision's save_image lays it out: rows of isqrt(n), 2 px padding), written atomically. Samples are
    decoded ``chunk`` at a time into the grid's pixels, so memory holds the grid, not n float images; a grid
    larger than image readers open (MAX_GRID_PIXELS) is refused before any work."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    path, kind = check_grid_file(path)
    if n < 1:
        raise InvalidParameterError(f"--n must be at least 1 (got {n})")
    if not capabilities_of(model).decoder:
        raise InvalidParameterError(f"{model.family} has no decoder: it cannot draw samples")
    size, pad = model.config.image_size, GRID_PADDING
    columns = min(n, max(1, math.isqrt(n)))
    rows = math.ceil(n / columns)
    height, width = (size, size) if n == 1 else (rows * (size + pad) + pad, columns * (size + pad) + pad)
    if height * width > MAX_GRID_PIXELS:
        side = (math.isqrt(MAX_GRID_PIXELS) - pad) // (size + pad)
        raise InvalidParameterError(f"--n {n:,}: a grid of {n:,} samples of {size} px would be "
                                    f"{height * width / 1e6:,.0f} megapixels, more than image viewers open; draw at "
                                    f"most {side * side:,} per grid (several grids with different --seed for more)")
    model.eval()
    z = model.prior(n, generator=torch.Generator().manual_seed(seed))
    grid = np.zeros((height, width, 3), dtype=np.uint8)
    for start in range(0, n, chunk):
        images = model.decode(z[start:start + chunk]).float().cpu() * 0.5 + 0.5
        images = images.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        for i, image in enumerate(images.permute(0, 2, 3, 1).numpy(), start):
            top, left = (0, 0) if n == 1 else ((i // columns) * (size + pad) + pad, (i % columns) * (size + pad) + pad)
            grid[top:top + size, left:left + size] = image
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(grid).save(tmp, format=kind)
    except OSError as e:  # the disk filled up, the directory went away
        raise OutputDirectoryError(f"cannot write --out {path} ({e.strerror or e}); choose another location") from None
    return path


def images(batch: dict | torch.Tensor) -> torch.Tensor:
    """The image tensor of a collated batch (or the tensor itself)."""
    return batch if isinstance(batch, torch.Tensor) else batch["image"]


def create(name: str, **overrides) -> LatentModel:
    """A new model of family ``name`` with its config defaults, overridden by ``overrides``. A config whose
    parameters would not fit in the memory free here is refused before anything is allocated (zoo/sizes.py)."""
    from latentds.zoo.sizes import model_memory  # noqa: PLC0415

    cls, config = family_config(name, **overrides)
    model_memory(cls, config)
    return cls(config)


def plan(name: str, **overrides) -> LatentModel:
    """The model ``create`` would build, on PyTorch's meta device (shapes only, no memory): for checking a
    config, its parameter groups and the memory it implies."""
    from latentds.zoo.sizes import meta_model  # noqa: PLC0415

    return meta_model(*family_config(name, **overrides))


def family_config(name: str, **overrides) -> tuple[type[LatentModel], ModelConfig]:
    """Family ``name``'s class and its config with ``overrides``, strictly checked (unknown keys, wrong types,
    out-of-range values); nothing is built: what a recipe check needs."""
    cls = REGISTRY.get(name)
    return cls, from_dict(cls.Config, {k: v for k, v in overrides.items() if k != "family"}, where=f"model ({name})")


def families() -> list[str]:
    """Every registered model family (the modules of latentds.zoo.models are imported on first use)."""
    return REGISTRY.names()


def load_pretrained(source: str | os.PathLike, *, revision: str | None = None, device: str = "cpu") -> LatentModel:
    """A model from a directory holding config.json + model.safetensors (a saved model or a training run), or
    from a Hugging Face Hub repo id (``org/name``), of the family its config names: ``latentds.from_pretrained``,
    the same as ``LatentModel.from_pretrained``. Weights are read with safetensors only, all keys required.

    An argument that looks like a path (``./x``, ``../x``, ``/x``, ``~/x``, more than one ``/``, or under a
    directory that exists here) is never taken for a Hub id: a missing one is "no model directory at ..."."""
    return LatentModel.from_pretrained(source, revision=revision, device=device)


def _model_directory(source: str | os.PathLike, revision: str | None) -> Path:
    """The local directory holding ``source``'s config.json and model.safetensors: ``source`` itself, or the
    Hugging Face cache's snapshot of Hub id ``source`` (zoo/hub.py fetches it). A one-line error otherwise."""
    text = os.fspath(source)
    directory = Path(text).expanduser()
    if directory.is_dir():
        for f in (directory / CONFIG, directory / WEIGHTS):
            if not f.is_file():
                raise InvalidParameterError(f"{directory} holds no {f.name}: not a saved latentds model "
                                            "(a training run is loadable once it has finished or been checkpointed)")
        return directory
    if directory.exists():
        raise InvalidParameterError(f"{text} is a file, not a model directory: give the directory that holds its "
                                    f"{CONFIG} and {WEIGHTS}")
    if isinstance(source, os.PathLike) or _looks_like_path(text) or not _is_hub_id(text):
        hint = ""
        if not isinstance(source, os.PathLike) and _is_hub_id(text):  # org/name beside a directory org/
            hint = (f" ({text.split('/')[0]}/ is a directory here, so {text} is taken for a path; to fetch the Hub "
                    "model of that name, run from another directory)")
        raise InvalidParameterError(f"no model directory at {text}{hint}: give a directory saved by latentds (a "
                                    "training run or save_pretrained's output) or a Hub id org/name")
    try:
        return download_model(text, revision)
    except HubError as e:
        raise HubError(f"no model directory at {text}, and as a Hub id: {e}") from None


def _looks_like_path(text: str) -> bool:
    """True for what can only be meant as a local path (never a Hub id org/name)."""
    if text in (".", "..", "~") or text.startswith(("./", "../", "/", "~")):
        return True
    separators = {os.sep, os.altsep or os.sep} - {"/"}
    if any(sep in text for sep in separators) or text.count("/") > 1:
        return True
    head = text.split("/", 1)[0]
    return "/" in text and Path(head).exists()  # runs/nosuch beside a runs/ directory


def _is_hub_id(text: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id  # noqa: PLC0415

    if text.count("/") != 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _read_config(config_file: Path) -> dict:
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:  # not JSON, not UTF-8, unreadable
        raise InvalidParameterError(f"cannot read {config_file}: {first_line(e)}; save, train or download the "
                                    "model again") from None
    if not isinstance(data, dict):
        kind = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(data), "null")
        raise InvalidParameterError(f"{config_file} holds a JSON {kind}, not the object of a latentds model config; "
                                    "save, train or download the model again")
    return data
