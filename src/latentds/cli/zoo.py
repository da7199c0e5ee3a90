"""``latentds zoo``, ``train``, ``sample`` and ``push``."""

from __future__ import annotations

import contextlib
import os

import click

from latentds.cli import main


@main.command("zoo")
@click.option("--pretrained", "pretrained", default=None, metavar="DIR", is_flag=False, flag_value="studies",
              help="List the trained models under DIR instead (default DIR: studies, where `latentds study` writes), "
                   "each with the numbers its card carries.")
@click.option("--markdown", is_flag=True, help="With --pretrained: one Markdown table (model, family, numbers).")
def zoo_list(pretrained, markdown):
    """List the packaged recipes, one line each (run one with `latentds train zoo/NAME`)."""
    from latentds.zoo.recipe import recipe_names, recipe_source  # noqa: PLC0415

    import tomllib  # noqa: PLC0415

    if pretrained is not None:
        _list_pretrained(pretrained, markdown)
        return

    for name in recipe_names():
        description = tomllib.loads(recipe_source(f"zoo/{name}")[1]).get("description", "")
        click.echo(f"zoo/{name:<13} {description}")


@main.command()
@click.argument("recipe")
@click.option("--data", default=None, help="Shard set to train on (a directory, brace pattern or URL).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a recipe field, e.g. --set model.latent_dim=64 --set train.lr=3e-4 (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--epochs", type=int, default=None, help="Epochs [recipe's train.epochs].")
@click.option("--max-steps", type=int, default=None, help="Stop after this many steps (0: no limit) [recipe's train.max_steps].")
@click.option("--batch-size", type=int, default=None, help="Batch size per rank [recipe's train.batch_size].")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:1 ... [recipe's train.device].")
@click.option("--log", type=click.Choice(["jsonl", "tensorboard"]), default=None,
              help="tensorboard: also write TensorBoard scalars and image grids to RUN/tensorboard "
                   "[recipe's train.log; metrics.jsonl always].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(recipe, data, out, overrides, resume, epochs, max_steps, batch_size, device, log, quiet):
    """Train a model from RECIPE: zoo/NAME (see `latentds zoo`) or a path to a TOML recipe.

    \b
    Examples:
      latentds train zoo/vae --data data/varied --out runs/vae
      latentds train zoo/beta_vae --data data/phi --out runs/bvae --set model.image_size=64 --epochs 5
      latentds train zoo/vae --data data/varied --out runs/vae --resume
      latentds train zoo/vae_disc --data data/phi --out runs/vd --set model.update_strategy=inferior
      latentds train zoo/cycle_vae --data data/ids --out runs/cyc --set model.image_size=64
      latentds train zoo/clamped_vae --data data/sweeps --out runs/clamped
      torchrun --nproc-per-node 4 -m latentds.cli train zoo/vae --data data/varied --out runs/vae-ddp
    The run directory is loadable with latentds.from_pretrained(RUN) and `latentds sample RUN`.
    What a family trains on (plain batches, same-label pairs, one-factor groups) is in its recipe's [data].
    """
    from dataclasses import replace  # noqa: PLC0415

    from latentds.zoo.names import check_train_names  # noqa: PLC0415

    check_train_names(recipe, overrides)  # a typo is answered before torch is imported
    from latentds.zoo.recipe import load_recipe, with_options  # noqa: PLC0415
    from latentds.zoo.trainer import train as run_training  # noqa: PLC0415

    spec = with_options(load_recipe(recipe, overrides), epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                        device=device, log=log)
    if data:
        spec = replace(spec, data=replace(spec.data, shards=data))
    from latentds.cli.stopping import interruptible  # noqa: PLC0415

    rank0 = os.environ.get("RANK", "0") == "0"

    def hint() -> str:
        from pathlib import Path  # noqa: PLC0415

        if not rank0:
            return None
        if (Path(out) / "checkpoint.pt").is_file():
            return f"{out} keeps its last checkpoint; run the same command with --resume to continue."
        if (Path(out) / "recipe.toml").is_file():
            return "stopped before the first checkpoint; run the same command with --resume to start the run again."
        return f"stopped before training started; nothing was written to {out}."

    with interruptible(hint), _notes(rank0):
        run = run_training(spec, out, resume=resume, progress=not quiet)
    if rank0:
        click.echo(f"trained {spec.model['family']} -> {run} (load it with latentds.from_pretrained({str(run)!r}))")


@contextlib.contextmanager
def _notes(show: bool):
    """The trainer's ResizeNote (images resized to the model's size) as one "note: ..." line on stderr, on rank 0;
    every other warning as Python shows it."""
    import warnings  # noqa: PLC0415

    from latentds.zoo.requirements import ResizeNote  # noqa: PLC0415

    with warnings.catch_warnings():
        original = warnings.showwarning

        def show_warning(message, category, *args, **kwargs):
            if not issubclass(category, ResizeNote):
                original(message, category, *args, **kwargs)
            elif show:
                click.echo(f"note: {message}", err=True)

        warnings.showwarning = show_warning
        yield


@main.command()
@click.argument("model")
@click.option("--n", type=int, default=64, show_default=True, help="Number of samples.")
@click.option("--out", type=click.Path(dir_okay=False), default="samples.png", show_default=True,
              help="Image grid (.png, or .jpg, .webp, .bmp, .tif).")
@click.option("--seed", type=int, default=0, show_default=True)
def sample(model, n, out, seed):
    """Draw N samples from MODEL (a saved model or run directory, or a Hub id org/name) into an image grid."""
    from latentds.errors import InvalidParameterError  # noqa: PLC0415
    from latentds.zoo.base import check_grid_file, load_pretrained, save_sample_grid  # noqa: PLC0415

    if n < 1:
        raise InvalidParameterError(f"--n must be at least 1 (got {n})")
    check_grid_file(out)  # before a model is fetched
    net = load_pretrained(model)
    save_sample_grid(net, n, out, seed=seed)
    click.echo(f"{n} samples of {net.family} -> {out}")


@main.command()
@click.argument("run", type=click.Path(file_okay=False, exists=True))
@click.option("--repo", required=True, help="Hub repository id, org/name.")
@click.option("--private", is_flag=True, help="Create the repository as private.")
def push(run, repo, private):
    """Upload a saved model or run directory (config, weights, card) to the Hugging Face Hub."""
    from latentds.zoo.hub import push_model  # noqa: PLC0415

    url = push_model(run, repo, private=private)
    click.echo(f"pushed {run} -> {url}")


def _list_pretrained(directory: str, markdown: bool = False) -> None:
    """Every finished model under ``directory`` (a saved model or training run), with the title of its card and the
    numbers its card's model-index carries (a study's runs)."""
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from latentds.errors import InvalidParameterError  # noqa: PLC0415

    root = Path(directory)
    if not root.is_dir():
        raise InvalidParameterError(f"--pretrained {directory}: no such directory (run `latentds study` first)")
    rows = []
    for weights in sorted(root.rglob("model.safetensors")):
        folder = weights.parent
        try:
            family = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("family", "?")
        except (OSError, ValueError, AttributeError):
            continue  # not a saved model (or a damaged one): `latentds sample` would say why
        title, numbers = _card_summary(folder / "README.md")
        rows.append((str(folder), family, title, numbers))
    if not rows:
        click.echo(f"no trained models under {directory}")
        return
    if markdown:
        click.echo("| model | family | card | numbers |\n|---|---|---|---|")
    for folder, family, title, numbers in rows:
        shown = "; ".join(f"{k} {v:.4g}" for k, v in numbers.items())
        if markdown:
            click.echo(f"| `{folder}` | {family} | {title} | {shown} |")
        else:
            click.echo(f"{folder:<60} {family:<12} {title}" + (f"\n{'':<60} {shown}" if shown else ""))


def _card_summary(card) -> tuple[str, dict[str, float]]:
    """(the card's title, {metric: value} from its model-index); empty where the card is missing or damaged."""
    if not card.is_file():
        return "", {}
    from huggingface_hub import ModelCard  # noqa: PLC0415

    text = card.read_text(encoding="utf-8")
    title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), "")
    try:
        results = ModelCard(text, ignore_metadata_errors=True).data.eval_results or []
    except Exception:  # a hand-edited card with broken metadata: still list the model
        results = []
    return title, {r.metric_type: r.metric_value for r in results if isinstance(r.metric_value, (int, float))}
