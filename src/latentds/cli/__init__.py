"""The ``latentds`` command: one click group per domain, each command a thin wrapper over a library function.

Heavy imports (torch, pyrender, webdataset) happen inside command bodies so that ``latentds --help`` is instant.
Errors a user can fix (LatentdsError) print as one line and exit with code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import click

from latentds import __version__
from latentds.errors import LatentdsError


class _Root(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LatentdsError as e:
            if ctx.params.get("debug"):
                raise
            click.echo(f"Error: {one_line(e)}", err=True)
            ctx.exit(2)


def one_line(error: Exception) -> str:
    """The message of ``error``; raised in a DataLoader worker, torch's re-raise puts the worker's traceback in
    it ("Caught ShardError in DataLoader worker process 0. Original Traceback ..."): then only its last line,
    the original message."""
    message = str(error)
    if "Original Traceback" not in message:
        return message
    last = message.strip().splitlines()[-1]
    kind, sep, text = last.partition(": ")
    return text if sep and kind.endswith(type(error).__name__) else last


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show the full traceback of errors.")
@click.version_option(__version__, prog_name="latentds")
def main(debug: bool) -> None:
    """latentds: datasets with known factors, generative models, and probes of their latent spaces.

    \b
    Start with:
      latentds render --phi --n 2000 --out data/phi   # render a small dataset
      latentds info data/phi                          # what is in it
    """


def _register() -> None:
    from latentds.cli import analysis, datasets, render, study, zoo  # noqa: F401,PLC0415  (commands attach to `main`)


_register()
