"""Running the CLI in-process and reading its one-line errors (imported by the tests that check them)."""

from click.testing import CliRunner

from latentds.cli import main


def run(*args):
    """``latentds ARGS`` through click's runner (stdout and stderr apart)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, *fragments) -> bool:
    """Exit 2, one line on stderr holding every fragment, no traceback anywhere."""
    lines = result.stderr.strip().splitlines()
    return (result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output
            and all(f in result.stderr for f in fragments))
