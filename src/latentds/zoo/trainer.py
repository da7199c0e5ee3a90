"""The one training entry point of the zoo: any LatentModel, any recipe, one process or data-parallel under
torchrun.

``train(recipe, out)`` checks everything it can before anything is written (data, memory, the factors the model
reads, the run directory), then runs the loop (zoo/loop.py: ``Loop`` with ``step`` / ``epoch`` / ``validate`` and
its ``Callback`` seam) with the run directory's writer as its callback (zoo/run_directory.py), under the
settings the recipe implies (zoo/train_settings.py). It writes a run directory that loads with
``from_pretrained(out)``. What the directory holds, what each step does, how learning rates follow the run's step,
what ``resume=True`` restores, what a failure leaves behind, and how ranks agree under torchrun are written once,
in ARCHITECTURE.md, "Recipes and training". The helpers it leans on: zoo/finite.py (NaN and infinity:
DivergedError naming step, group and term), zoo/sizes.py (memory checked before the model is built),
zoo/agreement.py (what ranks agree on each step) and shardsets/processes.py (``quiet_worker``: the DataLoader's
workers leave at once on SIGTERM and are ended when the loop ends, however it ends).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from latentds.allocator import keep_freed_memory
from latentds.datasets.shards import ShardWarning, load_shards, resize_for
from latentds.errors import InvalidParameterError
from latentds.zoo.base import LatentModel, create, first_line, plan
from latentds.zoo.capabilities import capabilities_of
from latentds.zoo.loop import Loop, Plan
from latentds.zoo.recipe import Recipe, check
from latentds.zoo.requirements import ResizeNote, check_batches, resize_note
from latentds.zoo.run_directory import CHECKPOINT, RunWriter, claim_run, load_checkpoint
from latentds.zoo.sizes import training_memory
from latentds.zoo.train_settings import training_device


def train(recipe: Recipe, out: str | os.PathLike, *, resume: bool = False, progress: bool = True) -> Path:
    """Train ``recipe`` into run directory ``out``; return it (loadable by ``latentds.from_pretrained``)."""
    out = Path(out)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if not recipe.data.shards:
        raise InvalidParameterError("no training data: pass --data DIR (a shard set) or set data.shards in the recipe")
    t = recipe.train
    device = training_device(t.device, rank)
    keep_freed_memory()  # no page faults for the same activations every step (allocator.py)
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
    # one writer per run directory: a second train (or render, analyze) into it is refused, naming this process;
    # a refused claim leaves nothing behind (a directory it made is removed)
    run = None
    if rank == 0:
        run, state = claim_run(out, recipe, resume)
    else:
        state = load_checkpoint(out / CHECKPOINT) if resume and (out / CHECKPOINT).is_file() else None
    try:
        loop = Loop(Plan(recipe=recipe, model=model, out=out, device=device, rank=rank, world=world, data=data,
                         validation=validation, horizon=horizon, last_step=last_step), state, out / CHECKPOINT)
        # after the loop has restored a checkpoint (a checkpoint that does not fit leaves recipe.toml as it was)
        writers = [RunWriter(out, recipe, model, t.log == "tensorboard")] if rank == 0 else []
        loop.run(writers, progress=progress)
        return out
    except Exception:
        if fresh and not (out / CHECKPOINT).is_file():  # failed before its first checkpoint: leave nothing behind
            run.remove_written()  # what this run wrote, never other files in out; releases the lock
        raise
    finally:
        if run is not None:
            run.release()  # idempotent


# --- checks before training -------------------------------------------------------------------------------------

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
    read = next(iter(model.factors_read), None)
    if read is not None and not names:
        raise InvalidParameterError(f"{model.family} reads factor {read!r}, but --data {d.shards} has no factor "
                                    "table (shards streamed without their manifest.json): give the shard set's "
                                    "directory, or train without the options that read factors")
    try:
        model.bind_factors(names)
    except InvalidParameterError as e:
        raise InvalidParameterError(f"{e} (--data {d.shards})") from None
    note = resize_note(d.shards, (stream.manifest or {}).get("image_size"), model.config.image_size, model.family)
    if note:  # every check passed: training will resize; say so (the CLI prints it as one line)
        warnings.warn(note, ResizeNote, stacklevel=2)
