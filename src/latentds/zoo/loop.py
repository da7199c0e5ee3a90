"""The training loop: a small ``Loop`` with ``train_step`` (one batch), ``run_epoch`` and ``validate``, and the
``Callback`` seam through which everything else hears of it (the run directory's writer implements it,
zoo/run_directory.py).

What each step does (``losses`` -> ``choose_updates`` -> each chosen group's gradients from the same weights -> its
optimiser step), how learning rates follow the run's step, what a checkpoint holds and how ranks agree under
torchrun are written once, in ARCHITECTURE.md, "Recipes and training". The loop owns its state (model, optimisers,
scaler, step, epoch, position in the epoch, RNG): ``state_dict`` is what a checkpoint holds and ``restore`` puts it
back; the run directory writes and reads the files. zoo/train_settings.py derives its settings from the recipe,
zoo/finite.py guards against NaN and infinity, zoo/agreement.py holds what ranks agree on each step.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from latentds.errors import DivergedError, InvalidParameterError, OutputDirectoryError, first_line
from latentds.shardsets.processes import DieWithParent, quiet_worker
from latentds.zoo.agreement import StepAgreement
from latentds.zoo.capabilities import capabilities_of
from latentds.zoo.finite import gradient_norm, nonfinite_tensors, nonfinite_term
from latentds.zoo.recipe import Recipe
from latentds.zoo.train_settings import amp_dtype, learning_rate, make_optimizer, set_learning_rate


class Callback:
    """What the loop tells the world, at the points where it has something to say; every hook does nothing by
    default. The run directory's writer (rank 0) implements it; an extra metric, a moving average of the weights or
    another logger is one more callback, not an edit of the loop. ``row`` and ``state`` are the loop's: read them,
    do not change them."""

    def on_log(self, row: dict) -> None:
        """A metrics row (every ``train.log_every`` steps and at each epoch's end): step, epoch, the window's mean
        loss terms, how often each group stepped, the learning rates, images/s."""

    def on_validation(self, step: int, epoch: int, scores: dict[str, float]) -> None:
        """The held-out stream's mean loss terms after an epoch (with ``data.holdout``)."""

    def on_checkpoint(self, model, state: dict, step: int) -> None:
        """A checkpoint is due: ``state`` is the loop's ``state_dict`` (every rank has checked the weights)."""

    def on_epoch_end(self, model, images: torch.Tensor, fixed_z: torch.Tensor, epoch: int) -> None:
        """An epoch ended and was checkpointed, with ``train.sample_every_epoch``: the last batch's images and the
        run's fixed prior codes, for figures."""

    def on_finish(self, model, step: int) -> None:
        """Training ended normally at ``step``."""


@dataclass(frozen=True)
class Plan:
    """What ``train`` checked before the loop starts: the recipe, the model (on its device), the run directory,
    the rank and world size, the training and validation streams, the schedule's horizon and the last step."""

    recipe: Recipe
    model: torch.nn.Module
    out: Path
    device: torch.device
    rank: int
    world: int
    data: object
    validation: object | None
    horizon: int
    last_step: int


class Loop:
    """One run's training loop: ``Loop(plan, state)`` builds the optimisers (restoring a checkpoint's ``state``),
    ``run(callbacks)`` trains until ``train.max_steps`` or the last epoch."""

    def __init__(self, plan: Plan, state: dict | None, checkpoint_file: Path):
        p, t = plan, plan.recipe.train
        self.plan, self.t, self.model = p, t, p.model
        if p.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if p.device.type == "cuda" else "gloo")
        self.groups = self.model.parameter_groups()
        declared = capabilities_of(self.model).groups
        if tuple(self.groups) != tuple(declared):  # a family's own mistake: the recipe was checked against these
            raise TypeError(f"{self.model.family}.parameter_groups() gives {tuple(self.groups)}, but its "
                            f"Capabilities declare groups={tuple(declared)}")
        defaults = capabilities_of(self.model).group_defaults
        self.settings = {g: t.optim(g, defaults.get(g)) for g in self.groups}
        self.optimizers = {g: make_optimizer(self.settings[g], params) for g, params in self.groups.items()}
        self.amp_dtype = amp_dtype(t.precision, p.device)
        self.scaler = torch.amp.GradScaler(p.device.type, enabled=self.amp_dtype == torch.float16)
        self.step, self.epoch, self.skip, self._rng = 0, 0, 0, None
        if state is not None:
            self.step, self.epoch, self.skip, self._rng = restore(state, self.model, self.optimizers, self.scaler,
                                                                  checkpoint_file)
        else:
            torch.manual_seed(t.seed + 7919 * p.rank)  # different noise per rank
        if p.world > 1:
            _broadcast(self.model)
        self.loader = loader(p.data, p.recipe.data.num_workers, p.device)
        self._batches = None  # the epoch's batch iterator (its workers): dropped whenever the loop stops
        self.images = None  # the last batch's images (for figures)

    # --- the run ----------------------------------------------------------------------------------------------------
    def run(self, callbacks: list[Callback], *, progress: bool = True) -> None:
        """Train until ``train.max_steps`` or the last epoch, telling ``callbacks``."""
        p, t = self.plan, self.t
        self.callbacks = list(callbacks)
        self.fixed_z = self.model.prior(64, generator=torch.Generator().manual_seed(t.seed)).cpu()
        self.bar = tqdm(total=p.last_step, initial=self.step, unit="step", disable=not progress or p.rank,
                        desc=f"train {self.model.family}", dynamic_ncols=True)
        self.window = _Window(self.groups)
        self.diverged = _Divergence(p.out, self.step)
        self.done = bool(t.max_steps) and self.step >= t.max_steps
        # every rank agrees each step that each has a batch and that none was stopped (zoo/agreement.py)
        with StepAgreement(p.world) as agree:
            try:
                while not self.done and self.epoch < t.epochs:
                    self.run_epoch(agree)
            finally:
                self.bar.close()
                # end the loader's workers now, whatever stopped the loop (its iterator would otherwise live on in
                # the traceback until exit, where multiprocessing's join waited for workers that could not leave)
                end_workers(self._batches)
                self._batches = None
            self.diverged.check_weights(self.model, self.step)
            for c in self.callbacks:
                c.on_finish(self.model, self.step)
            if p.world > 1:
                torch.distributed.barrier()

    def run_epoch(self, agree: StepAgreement) -> None:
        """One epoch (the rest of it, after a resumed checkpoint's position): its steps; at its end, unless the
        run stopped at ``train.max_steps`` inside it, the log, validation, a checkpoint and the figures."""
        p, t = self.plan, self.t
        p.data.set_epoch(self.epoch)
        with agree.deferred():  # starts the workers
            self._batches = iter(self.loader)
        if self._rng is not None:  # after the loader took its seed: the noise continues exactly where it stopped
            restore_rng(self._rng)
            self._rng = None
        position = 0
        while True:
            batch = next(self._batches, None)
            if not agree.go(batch is not None, self.step):
                break  # a rank lost samples to damaged data: every rank ends the epoch here, together
            position += 1
            if position <= self.skip:
                continue
            self.train_step(batch)
            self.done = bool(t.max_steps) and self.step >= t.max_steps  # else the epochs end the run, with figures
            if self.step % t.log_every == 0 or self.done:
                self._flush()
            if self.step % t.checkpoint_every == 0 or self.done:
                self._checkpoint(position)
            if self.done:
                return
        if position == 0:  # not one batch: unreadable shards, or fewer images than a batch
            raise InvalidParameterError(
                f"{p.recipe.data.shards} gave no batch of {t.batch_size} images in epoch {self.epoch + 1} (see "
                "the warnings above): check the shards (latentds info DIR --verify) or lower --batch-size")
        self._flush()
        self.epoch, self.skip = self.epoch + 1, 0
        if p.validation is not None:
            scores = self.validate(agree)
            for c in self.callbacks:
                c.on_validation(self.step, self.epoch, scores)
        self._checkpoint(0)
        if t.sample_every_epoch and self.images is not None:
            for c in self.callbacks:
                c.on_epoch_end(self.model, self.images, self.fixed_z, self.epoch)

    def train_step(self, batch: dict) -> None:
        """One optimisation step on ``batch``: every group's loss terms, the groups the model chooses, their
        gradients (all from the same weights), their optimiser steps."""
        p, t = self.plan, self.t
        model, groups, optimizers, scaler, step = self.model, self.groups, self.optimizers, self.scaler, self.step
        batch = to_device(batch, p.device)
        self.images = batch["image"]
        model.train()
        with torch.autocast(p.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext():
            terms = model.losses(batch, step)
        values = _values(terms, p.world)
        self.diverged.check_values(values, step)  # averaged over ranks: every rank stops alike
        wanted = set(model.choose_updates(values, step))
        chosen = [g for g in groups if g in wanted]
        # every chosen group's gradients first, from the same weights: groups may share parameters, and a step would
        # change weights that another group's backward pass still needs
        grads = {g: torch.autograd.grad(scaler.scale(terms[g]["loss"]), groups[g], allow_unused=True,
                                        retain_graph=i < len(chosen) - 1) for i, g in enumerate(chosen)}
        for g in chosen:
            set_learning_rate(optimizers[g], self.settings[g], step, p.horizon)
            optimizers[g].zero_grad(set_to_none=True)
            for param, grad in zip(groups[g], grads.pop(g)):
                param.grad = grad
            if p.world > 1:
                _all_reduce_grads(groups[g], p.world)
            if not scaler.is_enabled():  # fp16's scaler skips steps with inf gradients itself
                self.diverged.check_gradients(groups[g], g, step)
            if t.grad_clip:
                scaler.unscale_(optimizers[g])
                torch.nn.utils.clip_grad_norm_(groups[g], t.grad_clip)
            scaler.step(optimizers[g])
        scaler.update()
        if p.world > 1:
            _broadcast(model, buffers_only=True)
        self.step += 1
        self.window.add(values, chosen, self.images.shape[0])
        self.bar.update(1)

    @torch.no_grad()
    def validate(self, agree: StepAgreement) -> dict[str, float]:
        """Mean loss terms over the held-out stream (every rank its share, averaged)."""
        p = self.plan
        self.model.eval()
        sums, count = {}, 0
        batches = None
        try:
            with agree.deferred():  # starts the workers
                batches = iter(loader(p.validation, p.recipe.data.num_workers, p.device))
            for batch in batches:
                batch = to_device(batch, p.device)
                with torch.autocast(p.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext():
                    terms = self.model.losses(batch, self.step)
                for key, value in _flat(_values(terms, 1)).items():
                    sums[key] = sums.get(key, 0.0) + value
                count += 1
        finally:
            end_workers(batches)  # whatever stopped the pass (see end_workers)
        means = {k: v / max(1, count) for k, v in sums.items()}
        if p.world > 1:
            means = _mean_over_ranks(means)
        return means

    # --- what a checkpoint holds -------------------------------------------------------------------------------------
    def state_dict(self, position: int) -> dict:
        """The loop's state at batch ``position`` of the current epoch: what a checkpoint holds."""
        return {"model": self.model.state_dict(),
                "optimizers": {g: o.state_dict() for g, o in self.optimizers.items()},
                "scaler": self.scaler.state_dict(), "step": self.step, "epoch": self.epoch, "batch": position,
                **rng_state()}

    def _flush(self) -> None:
        window = self.window
        if window.count and self.callbacks:
            lrs = {g: learning_rate(self.settings[g], self.step, self.plan.horizon) for g in self.groups}
            row = metrics_row(self.step, self.epoch, window.means(), lrs, window.rate(self.plan.world))
            for c in self.callbacks:
                c.on_log(row)
            self.bar.set_postfix(postfix(row, list(self.groups)))
        window.reset()

    def _checkpoint(self, position: int) -> None:
        self.diverged.check_weights(self.model, self.step)  # on every rank alike: NaN weights are never saved
        if self.callbacks:
            state = self.state_dict(position)
            for c in self.callbacks:
                c.on_checkpoint(self.model, state, self.step)
        self.diverged.saved = self.step


def metrics_row(step: int, epoch: int, means: dict[str, float], lrs: dict[str, float], rate: float) -> dict:
    """A row of metrics.jsonl: step, epoch, the mean terms, the learning rate (``lr``, or ``lr/GROUP`` per group
    with several) and images/s."""
    lr = {"lr": next(iter(lrs.values()))} if len(lrs) == 1 else {f"lr/{g}": v for g, v in lrs.items()}
    return {"step": step, "epoch": epoch, **means, **lr, "images_per_s": rate}


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


def restore(state: dict, model, optimizers, scaler, file: Path) -> tuple[int, int, int, dict]:
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


def rng_state() -> dict:
    state = {"rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


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

def end_workers(batches) -> None:
    """Shut a DataLoader iterator's workers down now, and unregister them from torch's SIGCHLD handler. A stop
    raised while the loop waits in ``next(batches)`` leaves the iterator's own frames in the traceback, which keeps
    it alive until exit: there the workers a group-wide SIGTERM ended tripped that handler ("DataLoader worker is
    killed by signal", with a traceback, after the resume hint). Dropping the reference is not enough."""
    shutdown = getattr(batches, "_shutdown_workers", None)  # torch's multiprocessing iterator; None in-process
    if shutdown is not None:
        shutdown()


def loader(stream, num_workers: int, device: torch.device):
    return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=num_workers,
                                       pin_memory=device.type == "cuda", persistent_workers=False,
                                       worker_init_fn=DieWithParent(quiet_worker) if num_workers else None)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


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
