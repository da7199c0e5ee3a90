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
@click.option("--seeds", type=int, default=3, show_default=True,
              help="Train every run with seeds 0..K-1. A verdict (confirmed / contradicted) needs at least 3; with "
                   "fewer, findings are 'indicative'.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output directory [default: studies/NAME-SCALE]. Re-running resumes.")
@click.option("--device", default=None, help="auto, cpu, cuda ... [each recipe's train.device].")
@click.option("--runs", "runs", default=None, metavar="PATTERN",
              help="Only the runs whose names match PATTERN (e.g. '*-faces*'); the others are listed as not "
                   "selected.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def study(name, scale, data, seeds, out, device, runs, quiet):
    """Re-run a study of the research latentds was designed from; without NAME, list them.

    Renders the study's data, trains every run (each a loadable model with its card), runs its probes, and
    writes results.md and results.json: our numbers (mean and 95% interval over --seeds) beside the floors and
    the published ones, every run's health gates, and each claim restated as a measured comparison whose verdict
    counts only beyond the seed spread and the probes' own sampling error. Probes read held-out renders.

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
                            device=device, runs=runs, progress=not quiet)
    for finding in results["findings"]:
        verdict = finding["verdict"].split(" (not trained")[0].removesuffix(" (")
        click.echo(f"{verdict}: {finding['claim']}")
    untrained = [name for name, h in results["health"].items() if h.get("trained") is False]
    if untrained:
        click.echo(f"not trained (failed a health gate; see results.md): {', '.join(untrained)}")
    for run, why in results["skipped"].items():
        click.echo(f"skipped {run}: {why}")
    click.echo(f"results: {out or f'studies/{name}-{scale}'}/results.md")
