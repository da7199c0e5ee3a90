"""``latentds pack``: public datasets -> shard sets."""

from __future__ import annotations

import click

from latentds.cli import main

# The dataset names are their module names (latentds.datasets.public.DATASET_MODULES), so --help stays light.
DATASETS = ("sprites", "utkface", "celeba", "coco", "food101")


@main.command()
@click.argument("dataset", type=click.Choice(DATASETS))
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

    \b
    ROOT is, per dataset:
      sprites   data/sprites of nips2015-analogy-data.tar.gz (sprites_*.mat, sprites_splits.mat)
      utkface   the directory holding UTKFace/ ({age}_{gender}_{race}_{date}.jpg.chip.jpg)
      celeba    the directory holding celeba/ (img_align_celeba/, list_attr_celeba.txt, ...)
      coco      the directory holding train2017/, val2017/ and annotations/
      food101   the directory holding food-101/ (images/, meta/)
    The shards follow the same contract as rendered ones and stream with latentds.load_shards.
    """
    from latentds.cli.render import interruptible  # noqa: PLC0415
    from latentds.datasets.pack import pack_dataset  # noqa: PLC0415
    from latentds.datasets.public import dataset_class  # noqa: PLC0415

    split = split or dataset_class(dataset).splits[0]
    with interruptible():
        report = pack_dataset(dataset, root, out or f"data/{name or dataset + '-' + split}", split=split,
                              size=None if keep_size else size, shard_size=shard_size, name=name, workers=workers,
                              overwrite=overwrite, progress=not quiet)
    damaged = report.manifest.get("damaged", [])
    if damaged:
        shown = "; ".join(f"{entry['file']} ({entry['error']})" for entry in damaged[:3])
        more = f"; and {len(damaged) - 3} more (listed in manifest.json)" if len(damaged) > 3 else ""
        click.echo(f"skipped {len(damaged)} damaged image{'s' * (len(damaged) > 1)} that could not be decoded: "
                   f"{shown}{more}", err=True)
    click.echo(report.summary())
