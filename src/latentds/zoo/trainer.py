"""The one training loop of the zoo: any LatentModel, any recipe, one process or DDP under torchrun.

Run directory (``out``):
    recipe.toml          the recipe as run
    metrics.jsonl        one line per `log_every` steps: step, epoch, loss terms, lr, images/s
    checkpoint.pt        model, optimisers, schedulers, step, position in the epoch, RNG state (atomic; tensors
                         and numbers only, read back with torch.load(weights_only=True))
    config.json, model.safetensors, README.md   the model, refreshed at every checkpoint: from_pretrained(out)
    figures/             loss.png; epoch-NNN-recon.png and epoch-NNN-samples.png at each epoch's end

``resume=True`` continues from checkpoint.pt as if never stopped: same weights, optimiser moments, learning rate,
data order (the stream is deterministic in (seed, epoch); the batches already seen this epoch are skipped) and
noise (the torch RNG state). Under torchrun (RANK/WORLD_SIZE set) each rank trains on its own share of every
epoch (see latentds.datasets.shards), gradients are averaged by DistributedDataParallel, and only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

from latentds.datasets.shards import load_shards, resize_for
from latentds.errors import InvalidParameterError, OutputDirectoryError
from latentds.zoo.base import LatentModel, create
from latentds.zoo.recipe import Recipe, recipe_from_dict

CHECKPOINT = "checkpoint.pt"


def train(recipe: Recipe, out: str | os.PathLike, *, resume: bool = False, progress: bool = True) -> Path:
    """Train ``recipe`` into run directory ``out``; return it (loadable by ``latentds.from_pretrained``)."""
    out = Path(out)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if not recipe.data.shards:
        raise InvalidParameterError("no training data: pass --data DIR (a shard set) or set data.shards in the recipe")
    state = _prepare_run(out, recipe, resume) if rank == 0 else (torch.load(out / CHECKPOINT, weights_only=True)
                                                                  if resume else None)
    t = recipe.train
    device = _device(t.device, rank)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    torch.manual_seed(t.seed)  # the same initial weights on every rank
    model = create(recipe.model["family"], **recipe.model).to(device)
    data = load_shards(recipe.data.shards, batch_size=t.batch_size, shuffle=recipe.data.shuffle, seed=t.seed,
                       value_range=recipe.data.value_range, flip=recipe.data.flip,
                       size=resize_for(recipe.data.shards, model.config.image_size))
    per_epoch = data.epoch_batches(recipe.data.num_workers, world)
    if per_epoch == 0:
        raise InvalidParameterError(f"{recipe.data.shards} has too few images for one batch of {t.batch_size} per "
                                    f"worker and rank; lower --batch-size or data.num_workers")
    horizon = t.epochs * per_epoch if per_epoch else t.max_steps
    if not horizon:
        raise InvalidParameterError("these shards have no manifest with counts: set train.max_steps")

    groups = model.parameter_groups()
    optimizers = {g: _optimizer(t, params) for g, params in groups.items()}
    schedulers = {g: torch.optim.lr_scheduler.LambdaLR(opt, _schedule(t, horizon)) for g, opt in optimizers.items()}
    amp_dtype = _amp_dtype(t.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    step, epoch, skip, rng = 0, 0, 0, None
    if state is not None:
        model.load_state_dict(state["model"])
        for g in optimizers:
            optimizers[g].load_state_dict(state["optimizers"][g])
            schedulers[g].load_state_dict(state["schedulers"][g])
        scaler.load_state_dict(state["scaler"])
        step, epoch, skip, rng = state["step"], state["epoch"], state["batch"], state["rng"]
    else:
        torch.manual_seed(t.seed + 7919 * rank)  # different noise per rank
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=recipe.data.num_workers,
                                         pin_memory=device.type == "cuda")
    writer = _RunWriter(out, recipe, model) if rank == 0 else None
    fixed_z = torch.randn(64, model.config.latent_dim, generator=torch.Generator().manual_seed(t.seed))
    bar = tqdm(total=min(horizon, t.max_steps or horizon), initial=step, unit="step", disable=not progress or rank,
               desc=f"train {model.family}", dynamic_ncols=True)
    sums, count, images, tick = {}, 0, 0, time.perf_counter()

    def _flush() -> None:
        """Write the mean loss terms since the last line (rank 0) and show them on the bar."""
        nonlocal sums, count, images, tick
        if count and writer:
            rate = images / (time.perf_counter() - tick)
            means = {k: v / count for k, v in sums.items()}
            writer.log(step, epoch, means, schedulers, rate)
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(means.items())[:3]} | {"img/s": f"{rate:.0f}"})
        sums, count, images, tick = {}, 0, 0, time.perf_counter()
    done = bool(t.max_steps and step >= t.max_steps)
    x = None
    while not done and epoch < t.epochs:
        data.set_epoch(epoch)
        batches = iter(loader)
        if rng is not None:  # after the loader took its seed: the noise continues exactly where it stopped
            torch.set_rng_state(rng)
            rng = None
        position = 0
        for batch in batches:
            position += 1
            if position <= skip:
                continue
            x = batch["image"].to(device, non_blocking=True)
            model.train()
            for g, opt in optimizers.items():
                if not model.updates(g, step):
                    continue
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
                    terms = net(x, g)
                scaler.scale(terms["loss"]).backward()
                if t.grad_clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(groups[g], t.grad_clip)
                scaler.step(opt)
                scaler.update()
                prefix = f"{g}/" if len(optimizers) > 1 else ""
                for k, v in terms.items():
                    sums[prefix + k] = sums.get(prefix + k, 0.0) + float(v.detach())
            for s in schedulers.values():
                s.step()
            step, count, images = step + 1, count + 1, images + x.shape[0] * world
            bar.update(1)
            done = bool(t.max_steps and step >= t.max_steps)
            if step % t.log_every == 0 or done:
                _flush()
            if writer and (step % t.checkpoint_every == 0 or done):
                writer.checkpoint(model, optimizers, schedulers, scaler, step, epoch, position)
            if done:
                break
        else:
            _flush()
            epoch, skip = epoch + 1, 0
            if writer:
                writer.checkpoint(model, optimizers, schedulers, scaler, step, epoch, 0)
                if t.sample_every_epoch and x is not None:
                    writer.figures(model, x, fixed_z, epoch)
    bar.close()
    if writer:
        writer.finish(model)
    if world > 1:
        torch.distributed.barrier()
    return out


# --- pieces ------------------------------------------------------------------------------------------------------

def _prepare_run(out: Path, recipe: Recipe, resume: bool) -> dict | None:
    """Check the run directory; return the checkpoint to resume from (None for a fresh run)."""
    has_run = (out / "recipe.toml").is_file()
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise OutputDirectoryError(f"nothing to resume in {out}: it holds no {CHECKPOINT}; drop --resume")
        import tomllib  # noqa: PLC0415

        saved = recipe_from_dict(recipe.name, tomllib.loads((out / "recipe.toml").read_text()))
        if (saved.model, saved.data) != (recipe.model, recipe.data):
            raise OutputDirectoryError(f"{out} was trained with another model or data section; resume it with the "
                                       "same recipe (train settings such as epochs and max_steps may change)")
        return torch.load(out / CHECKPOINT, weights_only=True)
    if has_run or (out / CHECKPOINT).is_file():
        raise OutputDirectoryError(f"{out} already holds a training run; add --resume to continue it, "
                                   "or choose another --out")
    if out.exists() and any(out.iterdir()):
        raise OutputDirectoryError(f"--out {out} is not empty; choose a new or empty directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputDirectoryError(f"cannot create --out {out}: {e.strerror}") from None
    return None


def _device(name: str, rank: int) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"--device {name}: no CUDA device here; use --device cpu or auto")
    return device


def _amp_dtype(precision: str, device: torch.device):
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise InvalidParameterError(f"train.precision must be auto, fp32, bf16 or fp16 (got {precision!r})")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def _optimizer(t, params) -> torch.optim.Optimizer:
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if t.optimizer not in kinds:
        raise InvalidParameterError(f"train.optimizer must be one of {', '.join(kinds)} (got {t.optimizer!r})")
    return kinds[t.optimizer](params, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)


def _schedule(t, horizon: int):
    if t.schedule not in ("cosine", "constant"):
        raise InvalidParameterError(f"train.schedule must be cosine or constant (got {t.schedule!r})")

    def factor(step: int) -> float:
        if step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        if t.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - t.warmup_steps) / max(1, horizon - t.warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class _RunWriter:
    """Everything rank 0 writes into the run directory."""

    def __init__(self, out: Path, recipe: Recipe, model: LatentModel):
        self.out, self.recipe = out, recipe
        (out / "recipe.toml").write_text(recipe.to_toml(), encoding="utf-8")
        model.card_info = {"title": f"{model.family} trained with latentds recipe {recipe.name}",
                           "recipe": recipe.to_toml(), "data": f"`{recipe.data.shards}`"}
        self.last = {}

    def log(self, step, epoch, means, schedulers, rate) -> None:
        lr = next(iter(schedulers.values())).get_last_lr()[0]
        self.last = {"step": step, "epoch": epoch, **means, "lr": lr, "images_per_s": rate}
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(self.last) + "\n")

    def checkpoint(self, model, optimizers, schedulers, scaler, step, epoch, position) -> None:
        state = {"model": model.state_dict(), "optimizers": {g: o.state_dict() for g, o in optimizers.items()},
                 "schedulers": {g: s.state_dict() for g, s in schedulers.items()}, "scaler": scaler.state_dict(),
                 "step": step, "epoch": epoch, "batch": position, "rng": torch.get_rng_state()}
        tmp = self.out / f".{CHECKPOINT}.partial"
        torch.save(state, tmp)
        os.replace(tmp, self.out / CHECKPOINT)
        self.save_model(model)

    def save_model(self, model) -> None:
        model.card_info["metrics"] = {k: v for k, v in self.last.items() if k not in ("epoch", "lr")}
        tmp = self.out / ".model.partial"
        model.save_pretrained(tmp)
        for f in tmp.iterdir():
            os.replace(f, self.out / f.name)
        tmp.rmdir()

    @torch.no_grad()
    def figures(self, model, x, fixed_z, epoch) -> None:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
        from torchvision.utils import save_image  # noqa: PLC0415

        figures = self.out / "figures"
        figures.mkdir(exist_ok=True)
        model.eval()
        real = x[:8]
        try:
            recon = model.reconstruct(real)
            save_image(torch.cat([real, recon]).float().cpu() * 0.5 + 0.5, figures / f"epoch-{epoch:03d}-recon.png",
                       nrow=8)
        except InvalidParameterError:  # a family without an encoder
            pass
        samples = model.decode(fixed_z.to(x.device)).float().cpu()
        save_image(samples * 0.5 + 0.5, figures / f"epoch-{epoch:03d}-samples.png", nrow=8)
        log = self.out / "metrics.jsonl"
        rows = [json.loads(line) for line in open(log, encoding="utf-8")] if log.is_file() else []
        if rows:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            for key in [k for k in rows[-1] if k not in ("step", "epoch", "lr", "images_per_s")]:
                ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=key)
            ax.set_xlabel("step")
            ax.set_yscale("symlog")
            ax.legend()
            fig.tight_layout()
            fig.savefig(figures / "loss.png", dpi=100)
            plt.close(fig)

    def finish(self, model) -> None:
        self.save_model(model)
