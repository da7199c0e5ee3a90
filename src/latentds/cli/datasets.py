"""``latentds pack``: public datasets -> shard sets."""

from __future__ import annotations

import click

from latentds.cli import main


def _registered() -> dict:
    """The registered public datasets {name: class}, read only when asked for (when `pack` runs, checks its
    argument or shows its help), so that importing the CLI imports no dataset module."""
    from latentds.datasets.public import REGISTRY  # noqa: PLC0415

    return dict(REGISTRY.items())


class _DatasetChoice(click.Choice):
    """The registered dataset names as a click.Choice, read from the registry when first needed."""

    def __init__(self):
        super().__init__((), case_sensitive=True)

    @property
    def choices(self):
        return tuple(_registered())

    @choices.setter
    def choices(self, value):  # click.Choice.__init__ assigns the (empty) list given above
        pass

    def convert(self, value, param, ctx):
        """A name not registered is one line with "did you mean", exit 2 (as every unknown name)."""
        if value not in self.choices:
            from latentds.registry import unknown_name  # noqa: PLC0415

            self.fail(str(unknown_name("dataset", value, self.choices)), param, ctx)
        return super().convert(value, param, ctx)


class _PackCommand(click.Command):
    """``pack``: its help ends with what ROOT is for each registered dataset (each class's ``root_help``)."""

    def format_epilog(self, ctx, formatter):
        with formatter.section("ROOT, per dataset"):
            formatter.write_dl([(name, cls.root_help) for name, cls in _registered().items()])
        super().format_epilog(ctx, formatter)


@main.command(cls=_PackCommand)
@click.argument("dataset", type=_DatasetChoice())
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output directory [default: data/DATASET-SPLIT]. Re-running the same command there resumes.")
@click.option("--split", default=None, help="Split to pack [default: the dataset's first: train, or all].")
@click.option("--size", type=int, default=64, show_default=True,
              help="Centre-crop to a square and resize to SIZE x SIZE pixels.")
@click.option("--keep-size", is_flag=True, help="Store images at their original size instead.")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Images per shard.")
@click.option("--name", default=None, help="Shard name prefix [default: DATASET-SPLIT].")
@click.option("--workers", type=int, default=None, help="Processes [default: all cores].")
@click.option("--overwrite", is_flag=True,
              help="Replace a different (or damaged) shard set in --out; only its own files are deleted.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def pack(dataset, root, out, split, size, keep_size, shard_size, name, workers, overwrite, quiet):
    """Pack the public DATASET found at ROOT (in its original layout) into labelled WebDataset shards.

    DATASET is one of the registered public datasets; what ROOT is for each is listed below.
    The shards follow the same contract as rendered ones and stream with latentds.load_shards.
    """
    from latentds.cli.render import interruptible  # noqa: PLC0415
    from latentds.datasets.pack import pack_dataset  # noqa: PLC0415
    from latentds.datasets.public import dataset_class  # noqa: PLC0415

    if keep_size and click.get_current_context().get_parameter_source("size").name == "COMMANDLINE":
        from latentds.errors import InvalidParameterError  # noqa: PLC0415

        raise InvalidParameterError(f"--size {size} and --keep-size: give one (--keep-size stores the original sizes)")
    split = split or dataset_class(dataset).splits[0]
    with interruptible():
        report = pack_dataset(dataset, root, out or f"data/{name or dataset + '-' + split}", split=split,
                              size=None if keep_size else size, shard_size=shard_size, name=name, workers=workers,
                              overwrite=overwrite, progress=not quiet)
    damaged = report.manifest.get("damaged", [])
    if damaged:
        from latentds.text import terminal_text  # noqa: PLC0415

        shown = terminal_text("; ".join(f"{entry['file']} ({entry['error']})" for entry in damaged[:3]))
        more = f"; and {len(damaged) - 3} more (listed in manifest.json)" if len(damaged) > 3 else ""
        click.echo(f"skipped {len(damaged)} damaged image{'s' * (len(damaged) > 1)} that could not be decoded: "
                   f"{shown}{more}", err=True)
    click.echo(report.summary())
