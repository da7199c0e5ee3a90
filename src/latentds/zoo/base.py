"""LatentModel: the one base class of the zoo, its registry, and saving/loading (safetensors + JSON, never pickle).

A family is one file: a frozen config dataclass and a LatentModel subclass that registers itself,

    @dataclass(frozen=True)
    class VAEConfig(ModelConfig):
        beta: float = 1.0

    class VAE(LatentModel, family="vae"):
        Config = VAEConfig

and every family answers ``encode``, ``decode``, ``sample``, ``reconstruct`` and ``loss``. A model sees the whole
collated batch (``batch["image"]``, ``"labels"``, ``"factors"``/``"factor_mask"``, ``"group"`` ids for paired or
grouped batches; a bare image tensor works too) and the training step.

Training with more than one optimiser (a discriminator, a GAN, a reverse cycle) is part of the interface:
``parameter_groups()`` names the groups (they may share parameters); each step the trainer calls
``losses(batch, step)`` once (all groups' loss terms from one shared forward pass), hands the terms' values to
``choose_updates(values, step)`` -- the model decides from the current batch which groups step -- and
back-propagates each chosen group's ``"loss"`` into that group's parameters only.

Optional capabilities are declared on the class, never guessed: ``has_encoder`` (``encode`` works),
``has_decoder`` (``decode``, and so ``sample`` and ``reconstruct``, work; False for a network that only reads
images, such as the end-to-end CNN), ``is_posterior`` (``posterior(x) -> (mu, logvar)``), ``is_partitioned``
(``partition() -> {"s": slice, "z": slice}``); ``batches`` says what batches the family trains on ("plain",
"pairs" or "groups") and ``group_defaults`` its optimiser settings per group.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from torch import nn

from latentds.errors import InvalidParameterError, LatentdsError, OutputDirectoryError
from latentds.zoo.config import from_dict

REGISTRY: dict[str, type[LatentModel]] = {}
WEIGHTS, CONFIG = "model.safetensors", "config.json"


class HubError(LatentdsError):
    """A model could not be fetched from or pushed to the Hugging Face Hub."""


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


class LatentModel(nn.Module, PyTorchModelHubMixin, metaclass=abc.ABCMeta, library_name="latentds",
                  tags=["latentds"], repo_url="https://github.com/latentds/latentds"):
    """Base class: see the module docstring. Subclasses set ``Config`` and pass ``family=`` when subclassing."""

    family: ClassVar[str] = ""
    Config: ClassVar[type] = ModelConfig
    summary: ClassVar[str] = ""  # one line for `latentds zoo` and the model card
    has_encoder: ClassVar[bool] = True
    has_decoder: ClassVar[bool] = True
    is_posterior: ClassVar[bool] = False
    is_partitioned: ClassVar[bool] = False
    batches: ClassVar[str] = "plain"  # "plain", "pairs" (two samples sharing a label) or "groups" (one factor moves)
    group_defaults: ClassVar[dict[str, dict]] = {}  # optimiser settings per group over the recipe's [train]
    card_info: dict[str, Any]  # recipe, data, metrics: written into the model card by save_pretrained

    def __init_subclass__(cls, family: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if family:
            known = REGISTRY.get(family)
            if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
                raise TypeError(f"model family {family!r} is already registered by {known.__module__}."
                                f"{known.__qualname__}; choose another name")
            cls.family = family
            REGISTRY[family] = cls

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        config = config if config is not None else self.Config()
        if not isinstance(config, self.Config):
            raise InvalidParameterError(f"{type(self).__name__} needs a {self.Config.__name__}, "
                                        f"not {type(config).__name__}")
        self.config = replace(config, family=self.family)
        self._hub_mixin_config = self.config  # what save_pretrained writes as config.json
        self.card_info = {}

    # --- the interface every family implements -----------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, S, S) in [-1, 1] -> latent codes (N, latent_dim) (posterior means for VAEs)."""
        raise InvalidParameterError(f"{self.family} has no encoder")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (N, latent_dim) -> images (N, C, S, S) in [-1, 1]."""
        raise InvalidParameterError(f"{self.family} has no decoder")

    @abc.abstractmethod
    def loss(self, batch: dict | torch.Tensor, group: str = "model", step: int = 0) -> dict[str, torch.Tensor]:
        """Named loss terms for a batch (a collated batch dict or an image tensor); ``"loss"`` is the total that
        ``group``'s optimiser minimises."""

    def losses(self, batch: dict | torch.Tensor, step: int = 0) -> dict[str, dict[str, torch.Tensor]]:
        """The loss terms of every group for one batch: {group: terms}. Families with several groups override
        this to share one forward pass between them."""
        return {group: self.loss(batch, group, step) for group in self.parameter_groups()}

    def forward(self, batch: dict | torch.Tensor, group: str = "model", step: int = 0) -> dict[str, torch.Tensor]:
        return self.loss(batch, group, step)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimiser, in update order (one group, "model", unless a family needs more)."""
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

    # --- saving and loading ----------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """Write config.json, model.safetensors and a README.md model card (replacing an older card)."""
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "README.md").unlink(missing_ok=True)  # the mixin never overwrites a card
        super().save_pretrained(directory, **kwargs)

    def generate_model_card(self, *args, **kwargs) -> ModelCard:
        from latentds.zoo.card import model_card  # noqa: PLC0415

        return ModelCard(model_card(self))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> LatentModel:
        """Load a model saved by ``save_pretrained``; see ``latentds.from_pretrained``."""
        model = load_pretrained(pretrained_model_name_or_path, **kwargs)
        if cls is not LatentModel and not isinstance(model, cls):
            raise InvalidParameterError(f"{pretrained_model_name_or_path} holds a {model.family} model, "
                                        f"not {cls.family}")
        return model


# --- sample grids ---------------------------------------------------------------------------------------------------

GRID_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                ".tiff": "TIFF"}
MAX_GRID_PIXELS = 89_478_485  # PIL's Image.MAX_IMAGE_PIXELS: a larger image warns, twice as large fails, on opening
GRID_PADDING = 2  # torchvision's make_grid default


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
    if not model.has_decoder:
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
    tmp = path.with_name(f".{path.name}.partial")
    try:
        Image.fromarray(grid).save(tmp, format=kind)
        os.replace(tmp, path)
    except OSError as e:  # the disk filled up, the directory went away
        tmp.unlink(missing_ok=True)
        raise OutputDirectoryError(f"cannot write --out {path} ({e.strerror or e}); choose another location") from None
    return path


def images(batch: dict | torch.Tensor) -> torch.Tensor:
    """The image tensor of a collated batch (or the tensor itself)."""
    return batch if isinstance(batch, torch.Tensor) else batch["image"]


def create(name: str, **overrides) -> LatentModel:
    """A new model of family ``name`` with its config defaults, overridden by ``overrides``."""
    families()
    if name not in REGISTRY:
        raise InvalidParameterError(f"unknown model family {name!r}; choose one of: {', '.join(sorted(REGISTRY))}")
    cls = REGISTRY[name]
    return cls(from_dict(cls.Config, {k: v for k, v in overrides.items() if k != "family"}, where=f"model ({name})"))


def families() -> list[str]:
    """Every registered model family (the modules of latentds.zoo.models are imported on first use)."""
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415

    from latentds.zoo import models as package  # noqa: PLC0415

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return sorted(REGISTRY)


def model_from_config(data: dict, where: str) -> LatentModel:
    families()
    family = data.get("family")
    if family not in REGISTRY:
        raise InvalidParameterError(f"{where} names model family {family!r}; known: {', '.join(sorted(REGISTRY))}")
    return create(family, **data)


def load_pretrained(source: str | os.PathLike, *, revision: str | None = None, device: str = "cpu") -> LatentModel:
    """A model from a directory holding config.json + model.safetensors (a saved model or a training run), or
    from a Hugging Face Hub repo id (``org/name``). Weights are read with safetensors only, all keys required.

    An argument that looks like a path (``./x``, ``../x``, ``/x``, ``~/x``, more than one ``/``, or under a
    directory that exists here) is never taken for a Hub id: a missing one is "no model directory at ..."."""
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load_model  # noqa: PLC0415

    text = os.fspath(source)
    directory = Path(text).expanduser()
    if directory.is_dir():
        config_file, weights = directory / CONFIG, directory / WEIGHTS
        for f in (config_file, weights):
            if not f.is_file():
                raise InvalidParameterError(f"{directory} holds no {f.name}: not a saved latentds model "
                                            "(a training run is loadable once it has finished or been checkpointed)")
    elif directory.exists():
        raise InvalidParameterError(f"{text} is a file, not a model directory: give the directory that holds its "
                                    f"{CONFIG} and {WEIGHTS}")
    elif isinstance(source, os.PathLike) or _looks_like_path(text) or not _is_hub_id(text):
        hint = ""
        if not isinstance(source, os.PathLike) and _is_hub_id(text):  # org/name beside a directory org/
            hint = (f" ({text.split('/')[0]}/ is a directory here, so {text} is taken for a path; to fetch the Hub "
                    "model of that name, run from another directory)")
        raise InvalidParameterError(f"no model directory at {text}{hint}: give a directory saved by latentds (a "
                                    "training run or save_pretrained's output) or a Hub id org/name")
    else:
        try:
            config_file, weights = (Path(_hub_file(text, name, revision)) for name in (CONFIG, WEIGHTS))
        except HubError as e:
            raise HubError(f"no model directory at {text}, and as a Hub id: {e}") from None
    data = _read_config(Path(config_file))
    model = model_from_config(data, where=str(config_file))
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except (SafetensorError, OSError) as e:  # truncated, empty, or not a safetensors file
        raise InvalidParameterError(f"cannot read {weights} ({first_line(e)}): it is damaged or not a safetensors "
                                    "file; save, train or download the model again") from None
    except RuntimeError as e:  # shapes that do not fit the config
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise InvalidParameterError(f"{weights} does not fit {model.family} with {config_file}: "
                                    f"{lines[1] if len(lines) > 1 else first_line(e)}") from None
    if missing or unexpected:
        raise InvalidParameterError(f"{weights} does not fit {model.family}: missing {sorted(missing)[:3]}, "
                                    f"unexpected {sorted(unexpected)[:3]}")
    return model.to(device).eval()


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


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (its class name if it has none), at most ``limit``
    characters."""
    line = next((part.strip() for part in str(error).splitlines() if part.strip()), type(error).__name__)
    return line if len(line) <= limit else line[:limit - 1] + "…"


def hub_host() -> str:
    from huggingface_hub import constants  # noqa: PLC0415

    return urlparse(constants.ENDPOINT).hostname or "huggingface.co"


DOWNLOAD_ADVICE = "give a local model directory instead, or set HF_HUB_OFFLINE=1 to use models already in the " \
                  "local cache"


def check_hub_reachable(timeout: float = 3.0, advice: str = DOWNLOAD_ADVICE) -> None:
    """Fail in seconds, not after tens of seconds of retries, when the Hub cannot be reached: a TCP connection
    and, for an https endpoint, a TLS handshake (a host that accepts connections but fails TLS -- a captive
    portal, a broken proxy -- is otherwise retried with back-off). Skipped when a proxy is configured, as the
    proxy, not this machine, then connects to the Hub."""
    import ssl  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from huggingface_hub import constants  # noqa: PLC0415

    endpoint = urlparse(constants.ENDPOINT)
    host, secure = endpoint.hostname or "huggingface.co", endpoint.scheme != "http"
    if urllib.request.getproxies().get("https" if secure else "http"):
        return
    port = endpoint.port or (443 if secure else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if secure:  # the handshake only: certificates are the HTTP client's to check, with its own CA bundle
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                with context.wrap_socket(sock, server_hostname=host):
                    pass
    except ssl.SSLError as e:
        raise HubError(f"cannot reach the Hugging Face Hub at {host}: the TLS handshake failed "
                       f"({e.reason or first_line(e)}); {advice}") from None
    except OSError as e:  # refused, unreachable, no DNS, timed out (also during the handshake)
        raise HubError(f"cannot reach the Hugging Face Hub at {host} ({e.strerror or first_line(e)}); "
                       f"{advice}") from None


def _hub_file(repo_id: str, filename: str, revision: str | None) -> str:
    from huggingface_hub import constants, hf_hub_download  # noqa: PLC0415
    from huggingface_hub.errors import LocalEntryNotFoundError  # noqa: PLC0415

    try:  # the local cache first: no network needed for a model fetched before
        return hf_hub_download(repo_id, filename, revision=revision, local_files_only=True)
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise HubError(f"{repo_id}/{filename} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
                           "unset it to download, or give a local model directory") from None
    check_hub_reachable()
    try:
        return hf_hub_download(repo_id, filename, revision=revision)
    except Exception as e:  # repository or file not found, auth, network
        raise HubError(f"cannot fetch {filename} of {repo_id} from the Hub: {first_line(e)}") from None
