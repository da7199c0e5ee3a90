"""A training run's directory: its lifecycle (``claim_run`` claims it through latentds.shardsets.claim and returns
the checkpoint to resume from, ``load_checkpoint`` reads one; the claim's ``remove_written`` takes away what a run
that failed before its first checkpoint wrote) and ``RunWriter``, everything rank 0 writes into it, as the loop's callback (zoo/loop.py): recipe.toml,
metrics.jsonl (and TensorBoard), checkpoint.pt, the model with its card, figures. Writes are atomic; a full disk
is one line saying what was kept and how to go on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from latentds.errors import InvalidParameterError, OutputDirectoryError, first_line
from latentds.shardsets.atomic import atomic_path
from latentds.shardsets.claim import Claim, claim
from latentds.shardsets.marker import Marker
from latentds.zoo.base import CONFIG, WEIGHTS, LatentModel
from latentds.zoo.capabilities import capabilities_of
from latentds.zoo.card import CardInfo
from latentds.zoo.config import to_dict
from latentds.zoo.loop import Callback
from latentds.zoo.recipe import Recipe, recipe_from_dict

CHECKPOINT = "checkpoint.pt"
# what a run writes into its directory, recorded in the claim marker (a failed fresh run removes exactly these)
RUN_FILES = ("recipe.toml", "metrics.jsonl", CHECKPOINT, CONFIG, WEIGHTS, "README.md", "figures/", "tensorboard/",
             ".model.partial/")


def claim_run(out: Path, recipe: Recipe, resume: bool) -> tuple[Claim, dict | None]:
    """Claim the run directory (latentds.shardsets.claim: its lock and marker, whose identity is the recipe's model
    and data sections); return the claim and the checkpoint to resume from (None for a fresh run). A resumed run
    stopped before its first checkpoint starts again: what it wrote is removed."""
    run = claim(out, "train", run_identity(recipe), resume=resume, files=RUN_FILES,
                recognise=lambda: _legacy(out, resume),
                mismatch=lambda found: f"{out} was trained with another model or data section; resume it with the "
                                       "same recipe (train settings such as epochs and max_steps may change)")
    try:
        if not resume:
            return run, None
        if (out / "recipe.toml").is_file():
            _saved_identity(out)  # the run's record of its recipe: damaged, it is one line before anything changes
        if not (out / CHECKPOINT).is_file():  # stopped before its first checkpoint: start it again
            run.overwrite()
            return run, None
        return run, load_checkpoint(out / CHECKPOINT)
    except BaseException:
        run.release()
        raise


def run_identity(recipe: Recipe) -> dict:
    """What a resumed run must share with the run in its directory: the model and data sections (train settings
    such as epochs and max_steps may change)."""
    return {"model": recipe.model, "data": to_dict(recipe.data)}


def _legacy(out: Path, resume: bool) -> Marker | None:
    """A run directory written before the claim marker: its recipe.toml (or checkpoint) says it is a run; resuming
    it reads the recipe it was trained with."""
    has_run = (out / "recipe.toml").is_file()
    if not resume:
        return Marker("train", files=RUN_FILES) if has_run or (out / CHECKPOINT).is_file() else None
    if not has_run:
        return None
    return Marker("train", _saved_identity(out), files=RUN_FILES)


def _saved_identity(out: Path) -> dict:
    """The identity of the recipe a run's recipe.toml records; OutputDirectoryError, one line, when it is damaged."""
    import tomllib  # noqa: PLC0415

    try:
        raw = tomllib.loads((out / "recipe.toml").read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise OutputDirectoryError(f"cannot read {out / 'recipe.toml'} ({first_line(e, 100)}): the run's record of "
                                   "its recipe is damaged; train into a new --out") from None
    saved = recipe_from_dict("saved", raw, where=f"{out / 'recipe.toml'}")
    return json.loads(json.dumps(run_identity(saved), sort_keys=True, default=str))


def load_checkpoint(file: Path) -> dict:
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


class RunWriter(Callback):
    """Everything rank 0 writes into the run directory, as the training loop's callback: recipe.toml when the
    run starts, a metrics row per log, the held-out scores, the model and checkpoint.pt at each checkpoint, the
    figures of each epoch, the final model."""

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
            # safetensors' writer raises its own error: "... No space left on device (os error 28)"; 0.4 words it
            # "Error while serializing: IoError(Os { code: 28, kind: StorageFull, ... })"
            if not isinstance(e, OSError) and type(e).__name__ != "SafetensorError":
                raise
            full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or \
                any(words in str(e) for words in ("os error 28", "code: 28", "StorageFull"))
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

    def on_log(self, row: dict) -> None:
        self.last = row
        self._append(row)

    def on_validation(self, step, epoch, scores) -> None:
        self._append({"step": step, "epoch": epoch, **{f"val/{k}": v for k, v in scores.items()}})

    def on_checkpoint(self, model, state: dict, step: int) -> None:
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
    def on_epoch_end(self, model, x, fixed_z, epoch) -> None:
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
        rows = [r for r in metric_rows(log) if "images_per_s" in r]
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

    def on_finish(self, model, step: int) -> None:
        self.save_model(model, step)
        if self.board:
            self.board.close()


def metric_rows(log: Path) -> list[dict]:
    """The rows of metrics.jsonl (none if it is missing); a line cut short by a full disk is skipped."""
    rows = []
    if log.is_file():
        for line in open(log, encoding="utf-8"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows
