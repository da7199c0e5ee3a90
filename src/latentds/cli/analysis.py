"""``latentds analyze``: its flags are read into one AnalysisOptions (latentds.analysis.options) by the same
``from_dict`` that reads a study's ``analyze`` table, before torch is imported."""

from __future__ import annotations

import click

from latentds.cli import main


def _registered():
    """The registered probes (latentds.analysis.registry.registered()), read only when asked for: `latentds --help`
    imports no analysis module, `latentds analyze --help` imports the registrations but not torch."""
    from latentds.analysis.registry import registered  # noqa: PLC0415

    return registered()


def __getattr__(name: str):
    if name == "PROBE_NAMES":  # every registered probe, in order (a module attribute computed when read)
        return tuple(_registered())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _ProbesOption(click.Option):
    """``--probes``: its help names the registered probes, read when the help is shown."""

    def get_help_record(self, ctx):
        self.help = (f"Probes to run [default: all]: {', '.join(_registered())}. A probe that needs what the model "
                     "or data lacks (see Probes below) is skipped, saying why.")
        return super().get_help_record(ctx)


class _AnalyzeCommand(click.Command):
    """``analyze``: its help ends with each registered probe, what it needs and what its table shows."""

    def format_epilog(self, ctx, formatter):
        from latentds.analysis.registry import NEEDS  # noqa: PLC0415

        probes = _registered()
        with formatter.section("Probes (in the order they run)"):
            formatter.write_dl([(name, f"[needs {', '.join(k for k in NEEDS if k in p.needs) or 'nothing'}] "
                                       f"{p.explain}") for name, p in probes.items()])
        with formatter.section("Needs"):
            formatter.write_dl([(key, need.description) for key, need in NEEDS.items()])
        super().format_epilog(ctx, formatter)


@main.command(cls=_AnalyzeCommand)
@click.argument("model")
@click.option("--data", required=True, help="Shard set to encode (a directory, brace pattern or URL).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for figures and report.")
@click.option("--probes", cls=_ProbesOption, default=None, metavar="a,b,c", help="Probes to run [default: all].")
@click.option("--n", type=int, default=2000, show_default=True, help="Images to encode.")
@click.option("--sequence-data", default=None, help="A `latentds render --sequence` set for the interpolation probe "
              "and the UMAP's path overlay (resized to the model's image size if needed).")
@click.option("--inception-weights", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Local Inception weights for FID [default: FID in the features of the packaged frozen network "
                   "e2e_cnn@<hash>, named beside every value; see docs/fid-network.md].")
@click.option("--feature-model", default=None, metavar="MODEL",
              help="A model whose encoder gives the FID features (e.g. an e2e_cnn run; named by its weights' hash "
                   "in the output). An e2e_cnn also labels the generated samples of a model without an encoder, "
                   "so its arithmetic groups come from a predicted factor (--groups NAME>N NAME<N, default: the "
                   "quartiles of the most spread one).")
@click.option("--colour-by", default=None, help="Factor or label that colours the UMAP [default: the most spread "
              "factor].")
@click.option("--groups", nargs=2, default=None, metavar="A B", help="Two groups for latent arithmetic: "
              "ids:KEY,..., NAME=VALUE, NAME>N or NAME<N, e.g. --groups Smiling=1 Smiling=0. For a model without an "
              "encoder: ids of its samples in figures/generated.png, e.g. --groups ids:3,7,12 ids:1,5.")
@click.option("--dims", nargs=2, type=int, default=None, metavar="I J",
              help="Latent dimensions of the plain scatter [default: the two of largest variance].")
@click.option("--scores-mode", type=click.Choice(["reference", "fast"]), default="reference", show_default=True,
              help="reference: disentanglement_lib's estimators (DCI with 100 boosting rounds; minutes for wide "
                   "latents); fast: DCI with 10 rounds (seconds; inflates DCI, not comparable with papers).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def analyze(model, data, out, probes, n, sequence_data, inception_weights, feature_model, colour_by, groups, dims,
            scores_mode, quiet):
    """Probe the latent space of MODEL (a saved model or run directory, or a Hub id) on a shard set.

    Writes figures/, metrics.json, the encoded latents (reused by the next run) and a self-contained report.html.
    """
    from latentds.analysis.options import AnalysisOptions  # noqa: PLC0415  (imports nothing heavy)

    flags = {"probes": [p.strip() for p in probes.split(",") if p.strip()] if probes else None, "n": n,
             "sequence_data": sequence_data, "inception_weights": inception_weights, "colour_by": colour_by,
             "groups": groups or None, "dims": dims or None, "scores_mode": scores_mode}
    # before torch is imported: a typo or a value out of range is answered at once
    options = AnalysisOptions.from_dict({k: v for k, v in flags.items() if v is not None}, flags=True)
    from latentds.analysis.runner import run  # noqa: PLC0415
    from latentds.zoo.base import load_pretrained  # noqa: PLC0415
    from latentds.cli.stopping import interruptible  # noqa: PLC0415

    with interruptible(f"the encoded latents in {out} are kept; run the same command again to finish."):
        metrics = run(load_pretrained(model), data, out, options, progress=not quiet,
                      feature_model=load_pretrained(feature_model) if feature_model else None)
    for probe, reason in metrics["skipped"].items():
        click.echo(f"skipped {probe}: {reason}")
    click.echo(f"report: {out}/report.html")
