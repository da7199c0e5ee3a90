"""The one training loop of the zoo: any LatentModel, any recipe, one process or data-parallel under torchrun.

``train(recipe, out)`` writes a run directory that loads with ``from_pretrained(out)``. What the directory holds,
what each step does (``losses`` -> ``choose_updates`` -> each chosen group's gradients from the same weights ->
its optimiser step), how learning rates follow the run's step, what ``resume=True`` restores, what a failure
leaves behind, and how ranks agree under torchrun are written once, in ARCHITECTURE.md, "Recipes and training".
The helpers it leans on: zoo/finite.py (NaN and infinity: DivergedError naming step, group and term), zoo/sizes.py
(memory checked before the model is built), zoo/agreement.py (what ranks agree on each step) and
shardsets/processes.py (``quiet_worker``: the DataLoader's workers leave at once on SIGTERM and are ended when the
loop ends, however it ends).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from latentds.datasets.shards import ShardWarning, load_shards, resize_for
from latentds.errors import DivergedError, InvalidParameterError, OutputDirectoryError
from latentds.zoo.requirements import ResizeNote, check_batches, resize_note
from latentds.shardsets.atomic import atomic_path
from latentds.shardsets.lock import LOCK, DirectoryLock
from latentds.shardsets.processes import DieWithParent, quiet_worker
from latentds.zoo.agreement import StepAgreement
from latentds.zoo.base import CONFIG, WEIGHTS, LatentModel, create, factor_list, first_line, plan
from latentds.zoo.capabilities import capabilities_of
from latentds.zoo.card import CardInfo
from latentds.zoo.finite import gradient_norm, nonfinite_tensors, nonfinite_term
from latentds.zoo.recipe import OptimConfig, Recipe, check, recipe_from_dict
from latentds.zoo.sizes import training_memory

CHECKPOINT = "checkpoint.pt"


def train(recipe: Recipe, out: str | os.PathLike, *, resume: bool = False, progress: bool = True) -> Path:
    """Train ``recipe`` into run directory ``out``; return it (loadable by ``latentds.from_pretrained``)."""
    out = Path(out)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if not recipe.data.shards:
        raise InvalidParameterError("no training data: pass --data DIR (a shard set) or set data.shards in the recipe")
    t = recipe.train
    device = _device(t.device, rank)
    training_memory(plan(recipe.model["family"], **recipe.model), t.batch_size, device)  # before any allocation
    torch.manual_seed(t.seed)  # the same initial weights on every rank
    model = create(recipe.model["family"], **recipe.model).to(device)
    check(recipe, model)
    data, validation = _streams(recipe, model)
    per_epoch = data.epoch_batches(recipe.data.num_workers, world)
    if per_epoch == 0:
        raise InvalidParameterError(f"{recipe.data.shards} has too few images for one batch of {t.batch_size} per "
                                    f"worker and rank; lower --batch-size or data.num_workers")
    if validation is not None and validation.epoch_batches(recipe.data.num_workers, world) == 0:
        raise InvalidParameterError(f"data.holdout {recipe.data.holdout} holds out too few images for one batch of "
                                    f"{t.batch_size} per worker and rank; raise data.holdout or lower --batch-size")
    _check_readable(recipe, model)
    horizon = t.epochs * per_epoch if per_epoch else t.max_steps
    if not horizon:
        raise InvalidParameterError(f"{recipe.data.shards} has no manifest.json with sample counts, so an epoch's "
                                    "length is unknown: give --max-steps (train.max_steps)")
    last_step = min(horizon, t.max_steps or horizon)  # max_steps stops early; the schedule spans the epochs
    fresh = rank == 0 and not (resume and (out / CHECKPOINT).is_file())
    created = not out.exists()
    # one writer per run directory: a second train (or render, analyze) into it is refused, naming this process
    lock = DirectoryLock(out, purpose="train").acquire() if rank == 0 else None
    try:
        state = _prepare_run(out, recipe, resume) if rank == 0 else (
            _load_checkpoint(out / CHECKPOINT) if resume and (out / CHECKPOINT).is_file() else None)
    except BaseException:
        if lock is not None:
            lock.release()
        if created and rank == 0:
            shutil.rmtree(out, ignore_errors=True)  # only the lock made it: nothing of the user's is in it
        raise
    try:
        return _run(recipe, model, out, device, rank, world, data, validation, per_epoch, horizon, last_step, state,
                    progress)
    except Exception:
        if fresh and not (out / CHECKPOINT).is_file():  # failed before its first checkpoint: leave nothing behind
            lock.release()  # first, so the directory can go (release is idempotent: finally's call is a no-op)
            _remove_run(out, created)
        raise
    finally:
        if lock is not None:
            lock.release()


def _run(recipe, model, out, device, rank, world, data, validation, per_epoch, horizon, last_step, state,
         progress) -> Path:
    """The training loop of ``train``, once the data, the model and the run directory are checked."""
    t = recipe.train
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    groups = model.parameter_groups()
    settings = {g: t.optim(g, capabilities_of(model).group_defaults.get(g)) for g in groups}
    optimizers = {g: _optimizer(settings[g], params) for g, params in groups.items()}
    amp_dtype = _amp_dtype(t.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    step, epoch, skip, rng = 0, 0, 0, None
    if state is not None:
        step, epoch, skip, rng = _restore(state, model, optimizers, scaler, out / CHECKPOINT)
    else:
        torch.manual_seed(t.seed + 7919 * rank)  # different noise per rank
    if world > 1:
        _broadcast(model)
    loader = _loader(data, recipe.data.num_workers, device)
    writer = _RunWriter(out, recipe, model, t.log == "tensorboard") if rank == 0 else None
    fixed_z = model.prior(64, generator=torch.Generator().manual_seed(t.seed)).cpu()
    bar = tqdm(total=last_step, initial=step, unit="step", disable=not progress or rank,
               desc=f"train {model.family}", dynamic_ncols=True)
    window = _Window(groups)
    diverged = _Divergence(out, step)

    def _flush() -> None:
        if window.count and writer:
            row = writer.log(step, epoch, window.means(), {g: _lr(settings[g], step, horizon) for g in groups},
                             window.rate(world))
            bar.set_postfix(postfix(row, list(groups)))
        window.reset()

    def _checkpoint(position: int) -> None:
        diverged.check_weights(model, step)  # on every rank alike: a model with NaN weights is never saved
        if writer:
            writer.checkpoint(model, optimizers, scaler, step, epoch, position)
        diverged.saved = step

    done = bool(t.max_steps) and step >= t.max_steps
    x = batches = None
    # every rank agrees each step that each has a batch and that none was stopped (zoo/agreement.py)
    with StepAgreement(world) as agree:
        try:
            while not done and epoch < t.epochs:
                data.set_epoch(epoch)
                with agree.deferred():  # starts the workers
                    batches = iter(loader)
                if rng is not None:  # after the loader took its seed: the noise continues exactly where it stopped
                    _restore_rng(rng)
                    rng = None
                position, ended = 0, True
                while True:
                    batch = next(batches, None)
                    if not agree.go(batch is not None, step):
                        break  # a rank lost samples to damaged data: every rank ends the epoch here, together
                    position += 1
                    if position <= skip:
                        continue
                    batch = _to_device(batch, device)
                    x = batch["image"]
                    model.train()
                    with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
                        terms = model.losses(batch, step)
                    values = _values(terms, world)
                    diverged.check_values(values, step)  # averaged over ranks: every rank stops alike
                    wanted = set(model.choose_updates(values, step))
                    chosen = [g for g in groups if g in wanted]
                    # every chosen group's gradients first, from the same weights: groups may share parameters, and
                    # a step would change weights that another group's backward pass still needs
                    grads = {g: torch.autograd.grad(scaler.scale(terms[g]["loss"]), groups[g], allow_unused=True,
                                                    retain_graph=i < len(chosen) - 1) for i, g in enumerate(chosen)}
                    for g in chosen:
                        _set_lr(optimizers[g], settings[g], step, horizon)
                        optimizers[g].zero_grad(set_to_none=True)
                        for param, grad in zip(groups[g], grads.pop(g)):
                            param.grad = grad
                        if world > 1:
                            _all_reduce_grads(groups[g], world)
                        if not scaler.is_enabled():  # fp16's scaler skips steps with inf gradients itself
                            diverged.check_gradients(groups[g], g, step)
                        if t.grad_clip:
                            scaler.unscale_(optimizers[g])
                            torch.nn.utils.clip_grad_norm_(groups[g], t.grad_clip)
                        scaler.step(optimizers[g])
                    scaler.update()
                    if world > 1:
                        _broadcast(model, buffers_only=True)
                    step += 1
                    window.add(values, chosen, x.shape[0])
                    bar.update(1)
                    done = bool(t.max_steps) and step >= t.max_steps  # else the epochs end the run, with figures
                    if step % t.log_every == 0 or done:
                        _flush()
                    if step % t.checkpoint_every == 0 or done:
                        _checkpoint(position)
                    if done:
                        ended = False
                        break
                if ended:
                    if position == 0:  # not one batch: unreadable shards, or fewer images than a batch
                        raise InvalidParameterError(
                            f"{recipe.data.shards} gave no batch of {t.batch_size} images in epoch {epoch + 1} (see "
                            "the warnings above): check the shards (latentds info DIR --verify) or lower --batch-size")
                    _flush()
                    epoch, skip = epoch + 1, 0
                    if validation is not None:
                        scores = _validate(model, validation, recipe.data.num_workers, device, amp_dtype, world, step,
                                           agree)
                        if writer:
                            writer.log_validation(step, epoch, scores)
                    _checkpoint(0)
                    if writer and t.sample_every_epoch and x is not None:
                        writer.figures(model, x, fixed_z, epoch)
        finally:
            bar.close()
            # end the loader's workers now, whatever stopped the loop (its iterator would otherwise live on in the
            # traceback until exit, where multiprocessing's join waited for workers that could not leave)
            batches = None
        diverged.check_weights(model, step)
        if writer:
            writer.finish(model, step)
        if world > 1:
            torch.distributed.barrier()
    return out


def postfix(row: dict, groups: list[str]) -> dict[str, str]:
    """What the progress bar shows of a metrics row: with one group its first three terms; with several, each
    group's loss and accuracy (a discriminator's), and how often each group stepped; then images/s."""
    if len(groups) == 1:
        keys = [k for k in row if k not in ("step", "epoch", "images_per_s") and not k.startswith("lr")][:3]
    else:
        keys = [f"{g}/{term}" for g in groups for term in ("loss", "accuracy") if f"{g}/{term}" in row]
        keys += [f"updates/{g}" for g in groups if f"updates/{g}" in row]
    shown = {k.replace("updates/", "upd/"): f"{row[k]:.4g}" for k in keys}
    return shown | {"img/s": f"{row['images_per_s']:.0f}"}


class _Divergence:
    """The run's guard against NaN and infinity (zoo/finite.py): the first non-finite loss term, gradient or
    weight stops training with one line naming the step, group and term, and where the last finite checkpoint
    is; nothing non-finite is saved."""

    def __init__(self, out: Path, saved: int):
        self.out, self.saved = out, saved  # the step of the last checkpoint (0: none yet)

    def _stop(self, step: int, what: str):
        kept = (f"{self.out} keeps the last finite checkpoint (step {self.saved}); lower train.lr or set "
                "train.grad_clip, then run the same command with --resume" if self.saved else
                "nothing was saved; lower train.lr or set train.grad_clip and run again")
        raise DivergedError(f"training diverged at step {step + 1}: {what}; {kept}")

    def check_values(self, values: dict, step: int) -> None:
        found = nonfinite_term(values)
        if found:
            group, term, value = found
            self._stop(step, f"loss term {term!r} of group {group!r} is {value}")

    def check_gradients(self, params, group: str, step: int) -> None:
        norm = gradient_norm([p.grad for p in params])
        if not math.isfinite(norm):
            self._stop(step, f"the gradient of group {group!r} is not finite (norm {norm})")

    def check_weights(self, model, step: int) -> None:
        bad = nonfinite_tensors(model.state_dict())
        if bad:
            self._stop(step - 1, f"the weights hold NaN or infinite values after the update ({len(bad)} tensors, "
                                 f"e.g. {bad[0]})")


# --- data ----------------------------------------------------------------------------------------------------------

def _streams(recipe: Recipe, model: LatentModel):
    """The training stream and, with data.holdout, the validation stream."""
    d, t = recipe.data, recipe.train
    options = dict(batch_size=t.batch_size, seed=t.seed, value_range=d.value_range,
                   size=resize_for(d.shards, model.config.image_size),
                   batches=d.batches or capabilities_of(model).batches,
                   pair_label=d.pair_label, holdout=d.holdout)
    data = load_shards(d.shards, shuffle=d.shuffle, flip=d.flip, split="train", **options)
    validation = load_shards(d.shards, shuffle=0, split="validation", **options) if d.holdout else None
    return data, validation


def _loader(stream, num_workers: int, device: torch.device):
    return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=num_workers,
                                       pin_memory=device.type == "cuda", persistent_workers=False,
                                       worker_init_fn=DieWithParent(quiet_worker) if num_workers else None)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def _validate(model, stream, num_workers, device, amp_dtype, world, step, agree) -> dict[str, float]:
    """Mean loss terms over the held-out stream (every rank its share, averaged)."""
    model.eval()
    sums, count = {}, 0
    with agree.deferred():  # starts the workers
        batches = iter(_loader(stream, num_workers, device))
    for batch in batches:
        batch = _to_device(batch, device)
        with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
            terms = model.losses(batch, step)
        for key, value in _flat(_values(terms, 1)).items():
            sums[key] = sums.get(key, 0.0) + value
        count += 1
    means = {k: v / max(1, count) for k, v in sums.items()}
    if world > 1:
        means = _mean_over_ranks(means)
    return means


# --- one step ------------------------------------------------------------------------------------------------------

def _flat(values: dict[str, dict[str, float]]) -> dict[str, float]:
    """{group: {term: v}} -> {"term": v} for one group, {"group/term": v} for several (the names logged)."""
    if len(values) == 1:
        return dict(next(iter(values.values())))
    return {f"{g}/{k}": v for g, group_values in values.items() for k, v in group_values.items()}


def _values(terms: dict[str, dict[str, torch.Tensor]], world: int) -> dict[str, dict[str, float]]:
    """The loss values as floats, averaged over ranks (one all-reduce) so every rank decides alike."""
    keys = [(g, k) for g, group_terms in terms.items() for k in group_terms]
    stacked = torch.stack([terms[g][k].detach().float().reshape(()) for g, k in keys])
    if world > 1:
        torch.distributed.all_reduce(stacked)
        stacked /= world
    values: dict[str, dict[str, float]] = {g: {} for g in terms}
    for (g, k), v in zip(keys, stacked.tolist()):
        values[g][k] = v
    return values


def _mean_over_ranks(means: dict[str, float]) -> dict[str, float]:
    keys = sorted(means)
    stacked = torch.tensor([means[k] for k in keys], dtype=torch.float64)
    torch.distributed.all_reduce(stacked)
    return {k: v / torch.distributed.get_world_size() for k, v in zip(keys, stacked.tolist())}


def _all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average this group's gradients over ranks in one flat all-reduce (parameters without a gradient in this
    pass have none on every rank, and are left out)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def _broadcast(model: torch.nn.Module, buffers_only: bool = False) -> None:
    """Rank 0's parameters (at the start) or buffers (every step, like DDP's broadcast_buffers) on every rank."""
    tensors = list(model.buffers()) if buffers_only else list(model.state_dict().values())
    for tensor in tensors:
        torch.distributed.broadcast(tensor, 0)


class _Window:
    """Running sums of loss values and update counts between two lines of metrics.jsonl."""

    def __init__(self, groups):
        self.groups, self.multi = list(groups), len(groups) > 1
        self.reset()

    def reset(self) -> None:
        self.sums, self.updates, self.count, self.images, self.tick = {}, {}, 0, 0, time.perf_counter()

    def add(self, values, chosen, images) -> None:
        for key, v in _flat(values).items():
            self.sums[key] = self.sums.get(key, 0.0) + v
        for g in chosen:
            self.updates[g] = self.updates.get(g, 0) + 1
        self.count, self.images = self.count + 1, self.images + images

    def means(self) -> dict[str, float]:
        means = {k: v / self.count for k, v in self.sums.items()}
        if self.multi:  # the fraction of this window's steps in which each group stepped
            means |= {f"updates/{g}": self.updates.get(g, 0) / self.count for g in self.groups}
        return means

    def rate(self, world: int) -> float:
        return self.images * world / max(1e-9, time.perf_counter() - self.tick)


# --- settings ------------------------------------------------------------------------------------------------------

def _prepare_run(out: Path, recipe: Recipe, resume: bool) -> dict | None:
    """Check the run directory; return the checkpoint to resume from (None for a fresh run)."""
    has_run = (out / "recipe.toml").is_file()
    if resume:
        if not has_run:
            raise OutputDirectoryError(f"nothing to resume in {out}: it holds no training run; drop --resume")
        import tomllib  # noqa: PLC0415

        try:
            raw = tomllib.loads((out / "recipe.toml").read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise OutputDirectoryError(f"cannot read {out / 'recipe.toml'} ({first_line(e, 100)}): the run's record of "
                                       "its recipe is damaged; train into a new --out") from None
        saved = recipe_from_dict(recipe.name, raw, where=f"{out / 'recipe.toml'}")
        if (saved.model, saved.data) != (recipe.model, recipe.data):
            raise OutputDirectoryError(f"{out} was trained with another model or data section; resume it with the "
                                       "same recipe (train settings such as epochs and max_steps may change)")
        if not (out / CHECKPOINT).is_file():  # stopped before its first checkpoint: start it again
            for name in ("recipe.toml", "metrics.jsonl"):
                (out / name).unlink(missing_ok=True)
            return None
        return _load_checkpoint(out / CHECKPOINT)
    if has_run or (out / CHECKPOINT).is_file():
        raise OutputDirectoryError(f"{out} already holds a training run; add --resume to continue it (a run stopped "
                                   "before its first checkpoint starts again), or choose another --out")
    if out.exists() and any(p.name != LOCK for p in out.iterdir()):
        raise OutputDirectoryError(f"--out {out} is not empty; choose a new or empty directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputDirectoryError(f"cannot create --out {out}: {e.strerror}") from None
    return None


def _load_checkpoint(file: Path) -> dict:
    """A checkpoint written by this trainer (tensors and numbers only); a damaged one is a clear error."""
    try:
        state = torch.load(file, weights_only=True)  # tensors and numbers only: never unpickles code
    except Exception:  # truncated, empty, or not a checkpoint
        what = "an empty file" if file.stat().st_size == 0 else "truncated, or not written by latentds"
        raise OutputDirectoryError(f"cannot read {file} ({what}): the checkpoint is damaged; move it away and resume "
                                   "from an earlier copy, or train into a new --out") from None
    needed = {"model", "optimizers", "scaler", "step", "epoch", "batch", "rng"}
    if not isinstance(state, dict) or not needed <= set(state):
        lacks = sorted(needed - set(state)) if isinstance(state, dict) else sorted(needed)
        raise OutputDirectoryError(f"{file} is not a latentds checkpoint (it lacks {lacks}); move it away and "
                                   "resume from an earlier copy, or train into a new --out")
    return state


def _restore(state: dict, model, optimizers, scaler, file: Path) -> tuple[int, int, int, dict]:
    """Load a checkpoint's model, optimiser and scaler states; (step, epoch, batch, rng state)."""
    try:
        model.load_state_dict(state["model"])
        for g in optimizers:
            optimizers[g].load_state_dict(state["optimizers"][g])
        scaler.load_state_dict(state["scaler"])
        position = tuple(state[k] for k in ("step", "epoch", "batch"))
        if not all(isinstance(v, int) and v >= 0 for v in position) or not isinstance(state["rng"], torch.Tensor):
            raise ValueError("its step, epoch, batch or RNG state is not what this trainer writes")
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        why = first_line(ValueError(lines[1] if len(lines) > 1 else lines[0] if lines else repr(e)), 120)
        raise OutputDirectoryError(f"{file} does not fit this run's model ({why}); move it away and resume from an "
                                   "earlier copy, or train into a new --out") from None
    return (*position, state)


def _remove_run(out: Path, created: bool) -> None:
    """Remove what a run that failed before its first checkpoint wrote (never other files in ``out``)."""
    for name in ("recipe.toml", "metrics.jsonl", CONFIG, WEIGHTS, "README.md", f".{CHECKPOINT}.partial"):
        (out / name).unlink(missing_ok=True)
    for name in ("figures", "tensorboard", ".model.partial"):
        shutil.rmtree(out / name, ignore_errors=True)
    if created:
        try:
            out.rmdir()
        except OSError:  # something else is in it now: keep it
            pass


def _check_readable(recipe: Recipe, model: LatentModel) -> None:
    """Fail before anything is written when the data holds not one readable image (a file that is no tar, junk
    shards): reading the first image costs one shard open. Then bind the factors the model reads to the data's
    factor table by name (``LatentModel.bind_factors``), refusing data that lacks one."""
    d = recipe.data
    stream = load_shards(d.shards, value_range=d.value_range, size=resize_for(d.shards, model.config.image_size))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ShardWarning)
        samples = iter(stream)
        first = next(samples, None)
        getattr(samples, "close", lambda: None)()  # stop reading now (closes the shard)
    if first is None:
        why = next((str(w.message).removesuffix("; skipped") for w in caught if issubclass(w.category, ShardWarning)),
                   "no samples")
        raise InvalidParameterError(f"--data {d.shards} holds no readable image ({first_line(why, 200)}): give a "
                                    "shard set written by latentds render or latentds pack")
    check_batches(model.family, d.batches or capabilities_of(model).batches, d.pair_label, first.get("labels") or {},
                  d.shards)
    names = [row["name"] for row in stream.factor_table]  # none for shards streamed without their manifest
    if names:
        try:
            model.bind_factors(names)
        except InvalidParameterError as e:
            raise InvalidParameterError(f"{e} (--data {d.shards})") from None
    for name, column in model.factors_read.items():
        if column is None:
            raise InvalidParameterError(f"{model.family} reads factor {name!r}, but --data {d.shards} has no factor "
                                        "table (shards streamed without their manifest.json): give the shard set's "
                                        "directory, or train without the options that read factors")
        if names and (column >= len(names) or names[column] != name):
            have = f"factors {factor_list(names, 8)}"
            raise InvalidParameterError(f"{model.family} reads factor {name!r} (column {column} of a cuboid render), "
                                        f"but --data {d.shards} has {have}: train it on a cuboid render, or "
                                        "without the options that read factors")
    note = resize_note(d.shards, (stream.manifest or {}).get("image_size"), model.config.image_size, model.family)
    if note:  # every check passed: training will resize; say so (the CLI prints it as one line)
        warnings.warn(note, ResizeNote, stacklevel=2)


def _device(name: str, rank: int) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidParameterError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"--device {name}: no CUDA device here; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise InvalidParameterError(f"--device {name}: this machine has {count} CUDA device"
                                    f"{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1}); choose one of them")
    if device.type not in ("cpu", "cuda"):
        raise InvalidParameterError(f"--device {name}: latentds trains on cpu or cuda")
    return device


def _amp_dtype(precision: str, device: torch.device):
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise InvalidParameterError(f"train.precision must be auto, fp32, bf16 or fp16 (got {precision!r})")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def _optimizer(settings: OptimConfig, params) -> torch.optim.Optimizer:
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    return kinds[settings.optimizer](params, lr=settings.lr, betas=tuple(settings.betas),
                                     weight_decay=settings.weight_decay)


def _lr(settings: OptimConfig, step: int, horizon: int) -> float:
    """The learning rate of a group at run step ``step`` of ``horizon``."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    if settings.schedule == "constant":
        return settings.lr
    if settings.schedule == "step":
        return settings.lr * (settings.decay_factor if step >= settings.decay_at * horizon else 1.0)
    progress = min(1.0, (step - settings.warmup_steps) / max(1, horizon - settings.warmup_steps))
    return settings.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _set_lr(optimizer, settings: OptimConfig, step: int, horizon: int) -> None:
    for param_group in optimizer.param_groups:
        param_group["lr"] = _lr(settings, step, horizon)


def _rng_state() -> dict:
    state = {"rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict) -> None:
    torch.set_rng_state(state["rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


# --- what rank 0 writes ------------------------------------------------------------------------------------------

class _RunWriter:
    """Everything rank 0 writes into the run directory."""

    def __init__(self, out: Path, recipe: Recipe, model: LatentModel, tensorboard: bool):
        self.out, self.recipe = out, recipe
        with self.writing("recipe"):
            (out / "recipe.toml").write_text(recipe.to_toml(), encoding="utf-8")
        self.card = CardInfo(title=f"{model.family} trained with latentds recipe {recipe.name}",
                             recipe=recipe.to_toml(), data=f"`{recipe.data.shards}`")
        self.last = {}
        self.board = None
        # What figures() needs, imported now, before training: a Ctrl-C that lands inside a C extension's import
        # (matplotlib's ft2font) surfaces as "ImportError: initialization failed", not as an interrupt.
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401,PLC0415
        import torchvision.utils  # noqa: F401,PLC0415
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415
            except ImportError:
                raise InvalidParameterError("--log tensorboard needs the tensorboard package: "
                                            "pip install 'latentds[tensorboard]'") from None
            self.board = SummaryWriter(str(out / "tensorboard"))

    @contextlib.contextmanager
    def writing(self, what: str):
        """Writing ``what`` into the run directory: a full disk or another OS error is one line saying what was
        kept and how to go on (atomic writes leave no half-written file looking complete)."""
        try:
            yield
        except Exception as e:
            # safetensors' writer raises its own error: "... No space left on device (os error 28)"
            if not isinstance(e, OSError) and type(e).__name__ != "SafetensorError":
                raise
            full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "os error 28" in str(e)
            why = "no space left on the device" if full else f"cannot write ({getattr(e, 'strerror', None) or e})"
            then = ("free space, then run the same command with --resume (it keeps its last complete checkpoint)"
                    if (self.out / CHECKPOINT).is_file() else "free space, then run the same command again")
            raise OutputDirectoryError(f"{why} writing the {what} to {self.out}; {then}") from None

    def _append(self, row: dict) -> None:
        with self.writing("metrics"), open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.board:
            for key, value in row.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.board.add_scalar(key, value, row["step"])
            self.board.flush()

    def log(self, step, epoch, means, lrs, rate) -> dict:
        lr = {"lr": next(iter(lrs.values()))} if len(lrs) == 1 else {f"lr/{g}": v for g, v in lrs.items()}
        self.last = {"step": step, "epoch": epoch, **means, **lr, "images_per_s": rate}
        self._append(self.last)
        return self.last

    def log_validation(self, step, epoch, scores) -> None:
        self._append({"step": step, "epoch": epoch, **{f"val/{k}": v for k, v in scores.items()}})

    def checkpoint(self, model, optimizers, scaler, step, epoch, position) -> None:
        state = {"model": model.state_dict(), "optimizers": {g: o.state_dict() for g, o in optimizers.items()},
                 "scaler": scaler.state_dict(), "step": step, "epoch": epoch, "batch": position, **_rng_state()}
        # The model first: a run that has a checkpoint always loads with from_pretrained (a stop between the two
        # leaves the model of this step beside the previous checkpoint, which --resume continues from).
        self.save_model(model, step)
        # through a file object: a full disk is then an OSError (ENOSPC), where torch's own file writer raises an
        # opaque RuntimeError
        with self.writing(f"checkpoint of step {step}"), atomic_path(self.out / CHECKPOINT) as tmp, \
                open(tmp, "wb") as f:
            torch.save(state, f)

    def save_model(self, model, step: int) -> None:
        metrics = {k: v for k, v in self.last.items() if k not in ("epoch",) and not k.startswith("lr")}
        tmp = self.out / ".model.partial"
        try:
            with self.writing(f"model of step {step}"):
                model.save_pretrained(tmp, model_card_kwargs={"card": replace(self.card, metrics=metrics)})
                for f in tmp.iterdir():
                    os.replace(f, self.out / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # a save cut short (Ctrl-C, a full disk) leaves no partial folder

    @torch.no_grad()
    def figures(self, model, x, fixed_z, epoch) -> None:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        with self.writing(f"figures of epoch {epoch}"):
            self._figures(model, x, fixed_z, epoch)

    def _figures(self, model, x, fixed_z, epoch) -> None:
        import matplotlib.pyplot as plt  # noqa: PLC0415
        from torchvision.utils import make_grid, save_image  # noqa: PLC0415

        figures = self.out / "figures"
        figures.mkdir(exist_ok=True)
        model.eval()
        grids = {}
        declared = capabilities_of(model)
        if declared.encoder and declared.decoder:
            real = x[:8]
            grids["recon"] = torch.cat([real, model.reconstruct(real)]).float().cpu() * 0.5 + 0.5
        if declared.decoder:
            grids["samples"] = model.decode(fixed_z.to(x.device)).float().cpu() * 0.5 + 0.5
        for name, grid in grids.items():
            save_image(grid, figures / f"epoch-{epoch:03d}-{name}.png", nrow=8)
            if self.board:
                self.board.add_image(name, make_grid(grid.clamp(0, 1), nrow=8), epoch)
        log = self.out / "metrics.jsonl"
        rows = [r for r in _rows(log) if "images_per_s" in r]
        if rows:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            for key in [k for k in rows[-1] if k not in ("step", "epoch", "images_per_s")
                        and not k.startswith(("lr", "updates/"))]:
                ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=key)
            ax.set_xlabel("step")
            ax.set_yscale("symlog")
            ax.legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(figures / "loss.png", dpi=100)
            plt.close(fig)

    def finish(self, model, step: int) -> None:
        self.save_model(model, step)
        if self.board:
            self.board.close()


def _rows(log: Path) -> list[dict]:
    """The rows of metrics.jsonl (none if it is missing); a line cut short by a full disk is skipped."""
    rows = []
    if log.is_file():
        for line in open(log, encoding="utf-8"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows
