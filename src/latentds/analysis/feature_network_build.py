"""Building and validating the FID feature network (``python -m latentds.analysis.feature_network build``).

build(out): render the training set (varied, 64 px, seed TRAIN_SEED) and a held-out set (seed HELDOUT_SEED), train
``zoo/e2e_cnn`` on the first (TRAINING settings), copy its config.json + model.safetensors to out/network and
validate them there (validation.json). validate(network, heldout) on the held-out render, never trained on:

- R^2 of each regressed factor (its predictions in the factor's units, over the samples that have the factor);
- FID, its interval and KID between a real set (held-out images 0..N_SET-1) and: a disjoint real set (the next
  N_SET: the real-vs-real floor); that set under Gaussian noise (NOISE, on [-1, 1] pixels) and Gaussian blur (BLUR,
  sigma in pixels); and sets with modes dropped, drawn from the rest of the held-out images: all chains, only 2-3
  cuboids, only 2 cuboids (N_CUBOIDS), and phi_0 kept to the central 100%, 50%, 25% of its range (PHI_RANGE). Each
  row should rise with its level and stay far above the floor;
- the same table for a randomly initialised network of the same shape (seed 0), as the contrast: what the
  training, not the architecture, contributes.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

TRAIN_SEED, HELDOUT_SEED = 9001, 9002  # render seeds no study uses (studies render with seed 0)
TRAIN_N, HELDOUT_N, SIZE = 24_000, 8_000, 64
TRAINING = {"model.width": 16, "model.latent_dim": 64, "train.epochs": 8, "train.batch_size": 64, "train.lr": 1e-3,
            "train.schedule": "cosine", "train.seed": 0, "train.device": "cpu", "train.sample_every_epoch": False}
N_SET = 1000
NOISE = (0.05, 0.1, 0.2, 0.4)
BLUR = (0.5, 1.0, 1.5, 2.0)
N_CUBOIDS = ((2, 3, 4), (2, 3), (2,))
PHI_RANGE = (1.0, 0.5, 0.25)
DEGRADATION_SEED = 0


def build(out: Path, *, train_n: int | None = None, epochs: int | None = None, workers: int = 2) -> dict:
    """Render, train and validate into ``out`` (resumes renders; see the module docstring); the validation."""
    from latentds.render import RenderSpec, render_shards  # noqa: PLC0415
    from latentds.zoo.base import CONFIG, WEIGHTS  # noqa: PLC0415
    from latentds.zoo.recipe import load_recipe  # noqa: PLC0415
    from latentds.zoo.run_directory import CHECKPOINT  # noqa: PLC0415
    from latentds.zoo.trainer import train  # noqa: PLC0415

    out = Path(out)
    specs = {"train": RenderSpec("varied", n=train_n or TRAIN_N, size=SIZE, seed=TRAIN_SEED),
             "heldout": RenderSpec("varied", n=HELDOUT_N, size=SIZE, seed=HELDOUT_SEED)}
    for name, spec in specs.items():
        if not (out / name / "manifest.json").is_file():
            render_shards(spec, out / name, workers=workers)
    settings = {**TRAINING, **({"train.epochs": epochs} if epochs else {}), "data.num_workers": workers}
    recipe = load_recipe("zoo/e2e_cnn", [f"data.shards={out / 'train'}"] + [f"{k}={json.dumps(v)}"
                                                                              for k, v in settings.items()])
    run = train(recipe, out / "run", resume=(out / "run" / CHECKPOINT).is_file())
    network = out / "network"
    network.mkdir(exist_ok=True)
    for file in (CONFIG, WEIGHTS):
        shutil.copyfile(run / file, network / file)
    training = {"data": {"train": specs["train"].command(), "heldout": specs["heldout"].command()},
                "recipe": "zoo/e2e_cnn", "settings": settings}
    result = validate(network, out / "heldout", write=True, training=training)
    report(result)
    return result


def validate(network: Path, heldout: Path, *, write: bool = False, training: dict | None = None) -> dict:
    """R^2 per factor and the FID table (see the module docstring) of the saved network in ``network``; ``write``:
    also to network/validation.json (keeping the ``training`` record of one already there unless given)."""
    import torch  # noqa: PLC0415

    from latentds.zoo.base import load_pretrained  # noqa: PLC0415
    from latentds.analysis.feature_network import feature_network_name  # noqa: PLC0415

    network = Path(network)
    model = load_pretrained(network).eval()
    if training is None and (network / "validation.json").is_file():  # a re-validation keeps how it was trained
        training = json.loads((network / "validation.json").read_text(encoding="utf-8")).get("training")
    data = load_heldout(heldout)
    torch.manual_seed(0)
    random = type(model)(model.config).eval()
    command = json.loads((Path(heldout) / "manifest.json").read_text(encoding="utf-8"))["command"]
    result = {"network": feature_network_name(network), "heldout": command, "n_heldout": len(data["image"]),
              "n_set": N_SET, **({"training": training} if training else {}),
              "r2": r_squared(model, data), "fid": fid_table(model, data)}
    result["monotonic"] = {kind: _rises(rows) for kind, rows in result["fid"].items() if kind != "floor"}
    result["random_init"] = {"r2": r_squared(random, data), "fid": fid_table(random, data)}
    result["random_init"]["monotonic"] = {kind: _rises(rows) for kind, rows in result["random_init"]["fid"].items()
                                          if kind != "floor"}
    if write:
        (network / "validation.json").write_text(json.dumps(_rounded(result), indent=1) + "\n", encoding="utf-8")
    return result


def load_heldout(heldout: Path) -> dict:
    """{"image", "factors", "mask", "names"} of every image of the render ``heldout``, in order."""
    import torch  # noqa: PLC0415

    from latentds.datasets.shards import load_shards  # noqa: PLC0415

    stream = load_shards(str(heldout), batch_size=N_SET, partial=True)
    names = [r["name"] for r in stream.factor_table]
    batches = list(stream)
    return {"image": torch.cat([b["image"] for b in batches]), "names": names,
            "factors": torch.cat([b["factors"] for b in batches]),
            "mask": torch.cat([b["factor_mask"] for b in batches])}


def r_squared(model, data: dict) -> dict[str, float]:
    """R^2 of each of the model's targets on ``data``, over the samples that have it."""
    import torch  # noqa: PLC0415

    with torch.no_grad():
        predicted = torch.cat([model.predict(x) for x in data["image"].split(500)]).double()
    result = {}
    for j, target in enumerate(model.targets):
        column = data["names"].index(target)
        keep = data["mask"][:, column]
        y, p = data["factors"][keep, column].double(), predicted[keep, j]
        result[target] = float(1 - (y - p).square().sum() / (y - y.mean()).square().sum())
    return result


def fid_table(model, data: dict) -> dict:
    """{"floor": row, "noise" | "blur" | "n_cuboids" | "phi_0_range": [row per level]}; a row is the level and
    feature_distance.distances against the real set."""
    import torch  # noqa: PLC0415
    from torchvision.transforms.functional import gaussian_blur  # noqa: PLC0415

    from latentds.analysis.feature_distance import distances, features  # noqa: PLC0415
    from latentds.analysis.image_metrics import EncoderFeatures  # noqa: PLC0415

    images, factors, names = data["image"], data["factors"], data["names"]
    network = EncoderFeatures(model)
    real, other = features(images[:N_SET], network), images[N_SET:2 * N_SET]
    pool = features(images[2 * N_SET:], network)
    generator = torch.Generator().manual_seed(DEGRADATION_SEED)
    noise = torch.randn(other.shape, generator=generator)

    def row(level, fake_features):
        return {"level": level, **distances(real, fake_features)}

    def degraded(level, transform):
        return row(level, features(transform(other).clamp(-1, 1), network))

    n_cuboids = factors[2 * N_SET:, names.index("n_cuboids")]
    phi = factors[2 * N_SET:, names.index("phi_0")]
    half_range = 135.0  # phi_0 is uniform on -135..135 degrees (latentds.render.factors.ANGLES)
    return {
        "floor": row("disjoint real set", features(other, network)),
        "noise": [degraded(s, lambda x, s=s: x + s * noise) for s in (0.0, *NOISE)],
        "blur": [degraded(s, lambda x, s=s: gaussian_blur(x, 2 * math.ceil(3 * s) + 1, s) if s else x)
                 for s in (0.0, *BLUR)],
        "n_cuboids": [row(list(keep), pool[_isin(n_cuboids, keep)][:N_SET]) for keep in N_CUBOIDS],
        "phi_0_range": [row(f, pool[phi.abs() <= f * half_range][:N_SET]) for f in PHI_RANGE],
    }


def _isin(values, keep):
    import torch  # noqa: PLC0415

    return torch.isin(values, torch.tensor(keep, dtype=values.dtype))


def _rises(rows: list[dict]) -> bool:
    return all(a["fid"] < b["fid"] for a, b in zip(rows, rows[1:]))


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def report(result: dict) -> None:
    """The validation's figures, printed."""
    print(f"feature network {result['network']}: held-out R^2 per factor")
    for name, value in result["r2"].items():
        print(f"  {name:18s} {value:7.3f}   (random init {result['random_init']['r2'][name]:8.3f})")
    floor = result["fid"]["floor"]
    print(f"FID vs the real set ({result['n_set']} images); floor (disjoint real set): {floor['fid']:.4g} "
          f"[{floor['fid_ci'][0]:.4g}, {floor['fid_ci'][1]:.4g}], KID {floor['kid']:.5f}")
    for kind, rows in result['fid'].items():
        if kind == "floor":
            continue
        random_rows = result["random_init"]['fid'][kind]
        print(f"  {kind} (rises: {result['monotonic'][kind]}; random init: {result['random_init']['monotonic'][kind]})")
        for r, q in zip(rows, random_rows):
            print(f"    {str(r['level']):10s} FID {r['fid']:9.4g} [{r['fid_ci'][0]:.4g}, {r['fid_ci'][1]:.4g}]  "
                  f"KID {r['kid']:.5f}   random init FID {q['fid']:.4g}")
