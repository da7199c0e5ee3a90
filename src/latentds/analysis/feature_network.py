"""The frozen, published FID feature network: an ``e2e_cnn`` packaged with latentds, loaded by its name.

    from latentds.analysis.feature_network import load_feature_network
    network = load_feature_network()            # the packaged default; network.name == DEFAULT
    network = load_feature_network("e2e_cnn@...")   # by name; an unknown name: one line listing the available ones
    network(images)   # (N, 3, 64, 64) in [-1, 1] -> (N, 64) features (resize other sizes with context.resized)

A network's name is ``e2e_cnn@`` and the first 12 hex digits of the SHA-256 of its model.safetensors
(``feature_network_name``: any model's name for tables, a saved one or one in memory), so two FIDs are comparable
exactly when their names agree.
The packaged networks live in ``latentds/analysis/feature_networks/<directory>/`` (config.json, model.safetensors,
validation.json); PACKAGED pins each name to its directory, and loading refuses weights whose hash is not their
published name. Loading reads safetensors and JSON only (latentds.zoo.base), never a pickle.

Rebuilding the network (render, train, validate; docs/fid-network.md gives the settings and the figures)::

    OMP_NUM_THREADS=1 python -m latentds.analysis.feature_network build --out DIR --workers 1

(the command that built the packaged network) renders 24,000 varied 64 px images (seed 9001) and 8,000 held-out ones
(seed 9002, never trained on), trains ``zoo/e2e_cnn`` with width 16 and latent_dim 64 for 8 epochs (batch 64, Adam
1e-3, cosine, seed 0, CPU), and writes DIR/network/{config.json, model.safetensors, validation.json};
``python -m latentds.analysis.feature_network validate DIR/network --heldout DIR/heldout`` repeats the validation
alone. The weights depend on the machine's floating-point reductions, so a rebuild may give a new name: publish one
by copying DIR/network into the package and pinning its name in PACKAGED.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from latentds.errors import InvalidParameterError

if TYPE_CHECKING:
    from latentds.zoo.base import LatentModel

PACKAGE = "latentds.analysis.feature_networks"
PACKAGED = {"e2e_cnn@d489cc7bf654": "cuboids64"}  # published name -> its directory under PACKAGE
DEFAULT = next(iter(PACKAGED))
HASH_DIGITS = 12  # of the weights' SHA-256 in a name


def available() -> list[str]:
    """The names of the packaged feature networks, the default first."""
    return list(PACKAGED)


def network_directory(name: str | None = None) -> Path:
    """The package directory of network ``name`` (None: the default), its weights checked against the name."""
    name = DEFAULT if name is None else name
    if name not in PACKAGED:
        raise InvalidParameterError(f"unknown feature network {name!r}; available: {', '.join(available())}")
    directory = _root() / PACKAGED[name]
    found = feature_network_name(directory)
    if found != name:
        raise InvalidParameterError(f"the packaged weights in {directory} hash to {found}, not their published name "
                                    f"{name}: reinstall latentds")
    return directory


def feature_network_name(model_dir_or_model: str | os.PathLike | LatentModel) -> str:
    """``"<family>@<first 12 hex digits of the SHA-256 of model.safetensors>"``: the feature network's name for
    tables. From a directory (a saved model or training run), the file as saved; from a model in memory (a
    LatentModel), the bytes ``save_pretrained`` would write for it (the same name once saved)."""
    from latentds.shardsets.manifest import file_sha256  # noqa: PLC0415
    from latentds.zoo.base import CONFIG, WEIGHTS, LatentModel  # noqa: PLC0415

    if isinstance(model_dir_or_model, LatentModel):
        from safetensors.torch import save_model  # noqa: PLC0415

        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / WEIGHTS
            save_model(model_dir_or_model, str(weights))  # as huggingface_hub's mixin saves it
            return f"{model_dir_or_model.family}@{file_sha256(weights)[:HASH_DIGITS]}"
    directory = Path(model_dir_or_model)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise InvalidParameterError(f"{directory} holds no {WEIGHTS}: give a saved latentds model directory")
    try:
        family = json.loads((directory / CONFIG).read_text(encoding="utf-8")).get("family") or "model"
    except (OSError, ValueError):
        family = "model"
    return f"{family}@{file_sha256(weights)[:HASH_DIGITS]}"


def _root() -> Path:
    return Path(str(resources.files(PACKAGE)))


def load_feature_network(name: str | None = None):
    """The packaged feature network ``name`` (None: DEFAULT) in eval mode, as an
    ``EncoderFeatures`` module: ``network(images) -> (N, d)``, ``network.name``, ``network.model`` (the e2e_cnn:
    ``network.model.config.image_size`` is its input size, ``network.model.predict`` its factor predictions)."""
    from latentds.analysis.image_metrics import EncoderFeatures  # noqa: PLC0415
    from latentds.zoo.base import load_pretrained  # noqa: PLC0415

    directory = network_directory(name)
    return EncoderFeatures(load_pretrained(directory), name=DEFAULT if name is None else name).eval()


def main(argv: list[str] | None = None) -> int:
    """``build --out DIR [--train-n N --epochs E --workers W]`` or ``validate NETWORK_DIR --heldout DIR``."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m latentds.analysis.feature_network",
                                     description="Rebuild or validate the FID feature network.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="render, train and validate a feature network into --out")
    build.add_argument("--out", required=True, type=Path)
    build.add_argument("--train-n", type=int, default=None, help="training images (default: the published 24000)")
    build.add_argument("--epochs", type=int, default=None, help="training epochs (default: the published 8)")
    build.add_argument("--workers", type=int, default=2, help="render processes and data-loader workers")
    check = commands.add_parser("validate", help="validate a saved network directory on a held-out render")
    check.add_argument("network", type=Path)
    check.add_argument("--heldout", required=True, type=Path, help="a varied render with a seed not trained on")
    args = parser.parse_args(argv)
    from latentds.analysis import feature_network_build as fb  # noqa: PLC0415
    from latentds.errors import LatentdsError  # noqa: PLC0415

    try:
        if args.command == "build":
            fb.build(args.out, train_n=args.train_n, epochs=args.epochs, workers=args.workers)
        else:
            fb.report(fb.validate(args.network, args.heldout, write=True))
    except LatentdsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
