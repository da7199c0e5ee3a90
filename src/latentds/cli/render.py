"""``latentds render`` and ``latentds info``."""

from __future__ import annotations


import click

from latentds.cli import main


def _extras(ctx, param, value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


@main.command()
@click.option("--phi", is_flag=True,
              help="Preset: 2 cuboids, only Phi of the one joint varies (default n 10,000). The default preset "
                   "when neither --phi nor --varied is given (the command then says so).")
@click.option("--varied", is_flag=True,
              help="Preset: 2-4 cuboids, all angles, colours and lights vary (default n 500,000); not with --phi.")
@click.option("--n", type=int, default=None, help="Number of images [default: the preset's].")
@click.option("--size", type=int, default=64, show_default=True, help="Image width and height in pixels (8-1024).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample i depends only on (seed, i).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output directory [default: data/PRESET]. Re-running the same command there resumes.")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Images per shard.")
@click.option("--workers", type=int, default=None, help="Rendering processes [default: all cores].")
@click.option("--with", "extras", callback=_extras, default=None, metavar="depth,mask",
              help="Extra members per sample: depth (KEY.depth.npy), mask (KEY.mask.png, cuboid ids).")
@click.option("--sequence", default=None, metavar="FACTOR[,FACTOR...]",
              help="Render groups of --steps images in which only FACTOR (e.g. phi_0) moves across its range; "
                   "with several (phi_0,theta_0,light_azimuth), group g moves the (g mod count)-th.")
@click.option("--steps", type=int, default=None, help="Images per --sequence group.")
@click.option("--sweep", type=click.Choice(["random"]), default=None,
              help="random: each --sequence group moves its factor between two random end points (at least a "
                   "quarter of its range apart) instead of across the whole range.")
@click.option("--identities", type=int, default=None, metavar="K",
              help="K identities: each fixes the chain's colours and cuboid count, from (seed, identity); pose and "
                   "lights vary per sample; labels carry identity. Pairs of same-identity samples train the "
                   "cycle-consistent VAE.")
@click.option("--identity-seed", type=int, default=None, metavar="S",
              help="With --identities: the identities of the render made with --seed S (their colours and cuboid "
                   "counts), in new images from --seed: a held-out set of a training set's identities.")
@click.option("--name", default=None, help="Shard name prefix [default: the preset name].")
@click.option("--overwrite", is_flag=True,
              help="Replace a different (or damaged) shard set in --out; only its own files are deleted.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a pool of processes; ray: one task per shard on the Ray cluster that "
                   "ray.init() joins (RAY_ADDRESS, a running local cluster, else a new one on this machine); --out "
                   "must then be on storage every node can write.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def render(phi, varied, n, size, seed, out, shard_size, workers, extras, sequence, steps, sweep, identities,
           identity_seed, name, overwrite, engine, quiet):
    """Render articulated cuboid chains into labelled WebDataset shards.

    Each sample is KEY.png (RGB) and KEY.json (every factor, enough to re-render it exactly), in shards
    NAME-000000.tar, ... beside manifest.json and a README.md dataset card. The same command gives the same
    bytes whatever --workers; an interrupted run resumes when run again.

    \b
    Examples:
      latentds render --phi --n 2000 --out data/phi
      latentds render --varied --with depth,mask --out data/varied
      latentds render --varied --n 10000 --sequence phi_0 --steps 10 --out data/phi0-sweeps
      latentds render --varied --n 2400 --sequence phi_0,theta_0,light_azimuth --steps 8 --out data/sweeps
      latentds render --varied --n 20000 --identities 500 --out data/varied-ids
    """
    from latentds.errors import InvalidParameterError  # noqa: PLC0415

    if phi and varied:
        raise InvalidParameterError("--phi and --varied are two presets and exclude each other; give one of them "
                                    "(--phi is the default)")
    from latentds.render import RenderSpec, render_shards  # noqa: PLC0415

    spec = RenderSpec(preset="varied" if varied else "phi", n=n, size=size, seed=seed, shard_size=shard_size,
                      sequence=sequence, steps=steps, extras=extras, name=name, identities=identities,
                      sweep=sweep, identity_seed=identity_seed)
    with interruptible():
        report = render_shards(spec, out or f"data/{spec.name}", workers=workers, overwrite=overwrite,
                               engine=engine, progress=not quiet)
    click.echo(report.summary())
    if not phi and not varied:  # said after the work, so that an error stays one line
        click.echo("preset: phi (the default: 2 cuboids, only Phi varies; give --varied for the varied preset)")


def interruptible():
    """Ctrl-C, SIGTERM and SIGHUP stop a producer cleanly (workers stopped, lock released, finished shards kept)
    and exit with 130 (Ctrl-C) or 128 + the signal, with the resume hint."""
    from latentds.cli.stopping import interruptible as stopping  # noqa: PLC0415

    return stopping("finished shards are kept; run the same command again to resume.")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--verify", is_flag=True, help="Check every shard's size, sha256 and sample count against the manifest.")
def info(directory, verify):
    """Describe the shard set in DIRECTORY (and with --verify, check it)."""
    from latentds.errors import ShardError  # noqa: PLC0415
    from latentds.shardsets.manifest import describe, read_manifest, verify_shards  # noqa: PLC0415

    click.echo(describe(read_manifest(directory)))
    if verify:
        from tqdm.auto import tqdm  # noqa: PLC0415

        problems = verify_shards(directory, progress=lambda it: tqdm(it, desc="verify", unit="shard"))
        if problems:
            raise ShardError(f"{len(problems)} problem(s) in {directory}: " + "; ".join(problems))
        click.echo("verified: every shard matches the manifest")
