"""The ``latentds`` command: one click group per domain, each command a thin wrapper over a library function.

Heavy imports (torch, pyrender, webdataset) happen inside command bodies so that ``latentds --help`` is instant.
Errors a user can fix (LatentdsError) print as one line and exit with code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys

import click

from latentds import __version__
from latentds.errors import LatentdsError
from latentds.text import terminal_text


class _Root(click.Group):
    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """click's main, except that a usage mistake (an unknown option, a value out of its choices, a file where a
        directory is wanted) is one line, "Error: ... (see 'latentds CMD --help')", exit 2, as every other error."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:
            if isinstance(e, getattr(click.exceptions, "NoArgsIsHelpError", ())):
                e.show()  # a bare command group: its help
            else:
                where = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
                click.echo(f"Error: {e.format_message()}{where}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except (click.exceptions.Abort, EOFError):
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except BrokenPipeError:  # output piped into a reader that stopped (| head): quiet, as click's own main
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (Python flushes stdout at exit)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LatentdsError as e:
            if ctx.params.get("debug"):
                raise
            # Messages quote names read from files: their control characters are written out, never sent raw.
            click.echo(f"Error: {terminal_text(one_line(e), keep_tab=True)}", err=True)
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
