"""``latentds study``."""

from __future__ import annotations

import click

from latentds.cli import main


@main.command()
@click.argument("name", required=False)
@click.option("--scale", type=click.Choice(["smoke", "cpu", "full"]), default="cpu", show_default=True,
              help="smoke: seconds, checks the machinery; cpu: about an hour on 2 CPU cores; full: the published "
                   "setting (a GPU machine).")
@click.option("--data", "data", multiple=True, metavar="[NAME=]DIR",
              help="A shard set for the study's external data (e.g. packed 2D Sprites); repeatable as NAME=DIR.")
@click.option("--seeds", type=int, default=1, show_default=True, help="Train every run with seeds 0..K-1.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output directory [default: studies/NAME-SCALE]. Re-running resumes.")
@click.option("--device", default=None, help="auto, cpu, cuda ... [each recipe's train.device].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def study(name, scale, data, seeds, out, device, quiet):
    """Re-run a study of the research latentds was designed from; without NAME, list them.

    Renders the study's data, trains every run (each a loadable model with its card), runs its probes, and
    writes results.md and results.json: our numbers (mean +- spread over --seeds) beside the published ones,
    and each published finding restated as a measured comparison.

    \b
    Examples:
      latentds study
      latentds study disc-strategies --scale cpu --out studies/disc
      latentds study cycle-identity --data sprites=data/sprites-train --seeds 3
    """
    import tomllib  # noqa: PLC0415

    from latentds.studies.study import study_names, study_text  # noqa: PLC0415

    if name is None:
        for study_name in study_names():
            click.echo(f"{study_name:<16} {tomllib.loads(study_text(study_name)).get('description', '')}")
        return
    from latentds.registry import check_name  # noqa: PLC0415

    check_name("study", name, study_names())  # before the runner (and torch) is imported
    from latentds.studies.runner import run_study  # noqa: PLC0415

    given = {}
    for item in data:
        key, sep, path = item.partition("=")
        given[key if sep else ""] = path if sep else key
    from latentds.cli.stopping import interruptible  # noqa: PLC0415

    with interruptible("finished runs are kept; run the same command again to resume."):
        results = run_study(name, out or f"studies/{name}-{scale}", scale=scale, data=given, seeds=seeds,
                            device=device, progress=not quiet)
    for finding in results["findings"]:
        click.echo(f"{finding['verdict']:>14}: {finding['claim']}")
    for run, why in results["skipped"].items():
        click.echo(f"skipped {run}: {why}")
    click.echo(f"results: {out or f'studies/{name}-{scale}'}/results.md")
