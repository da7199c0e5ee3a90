"""README's first command, step by step, timed; the measured figure written into README between markers.

    python benchmarks/first_command.py [--workdir DIR] [--no-write]

Reads the first command from README.md (the ```bash block after the "first-command" marker), runs each
`latentds ...` step of it in DIR (a fresh temporary directory by default) with this Python
(`python -m latentds.cli`), and measures each step's wall time and CPU time (user + system, the step's processes
and all their children). The install steps (venv, pip) are not run: the figure is "after install". The result
replaces the text between `<!-- first-command-time -->` and `<!-- /first-command-time -->` in README.md (unless
--no-write), so the README states the time measured, never a guess.

CPU seconds / cores is a lower bound on the wall time of an idle machine with that many cores; on a shared machine
the wall time is inflated by other users, CPU time much less.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- first-command-time -->", "<!-- /first-command-time -->"
COMMAND_MARK = "<!-- first-command -->"


def first_command(readme: str) -> list[list[str]]:
    """The `latentds` steps of the first command (each as argv after `latentds`)."""
    after = readme[readme.index(COMMAND_MARK):]
    block = re.search(r"```bash\n(.*?)```", after, re.S).group(1)
    steps = []
    for part in " ".join(line.rstrip("\\") for line in block.splitlines()).split("&&"):
        words = shlex.split(part)
        if words and words[0].endswith("latentds"):
            steps.append(words[1:])
    return steps


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one `latentds` step run to completion (exit 0 required)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "latentds.cli", *argv], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def summary(rows: list[tuple[str, float, float]]) -> str:
    wall, cpu = sum(r[1] for r in rows), sum(r[2] for r in rows)
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    steps = "; ".join(f"{name} {w:.0f} s wall / {c:.0f} s CPU" for name, w, c in rows)
    return (f"Measured by `python benchmarks/first_command.py` on {datetime.date.today().isoformat()}, "
            f"{platform.machine()}, {cores} cores (load average {load:.1f} at the end): **{wall:.0f} s wall, "
            f"{cpu:.0f} s CPU** after install; an idle {cores}-core machine needs at least {cpu / cores:.0f} s "
            f"(CPU / cores). Steps: {steps}.")


def step_name(argv: list[str]) -> str:
    if argv[0] == "render":
        return "render " + ("sequence" if "--sequence" in argv else "images")
    return argv[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="where the command writes [default: a temp dir]")
    parser.add_argument("--no-write", action="store_true", help="print the figure, leave README.md alone")
    args = parser.parse_args()
    readme = README.read_text(encoding="utf-8")
    steps = first_command(readme)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="latentds-first-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for argv in steps:
        wall, cpu = timed(argv, workdir)
        rows.append((step_name(argv), wall, cpu))
        print(f"{step_name(argv):<16} {wall:7.1f} s wall {cpu:7.1f} s CPU   latentds {' '.join(argv)}", flush=True)
    line = summary(rows)
    print(line)
    if not args.no_write:  # README read again: it may have been edited while the command ran
        head, rest = README.read_text(encoding="utf-8").split(START, 1)
        README.write_text(head + START + line + END + rest.split(END, 1)[1], encoding="utf-8")
        print(f"written into {README}")
    print(f"outputs in {workdir}")


if __name__ == "__main__":
    main()
