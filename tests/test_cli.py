"""The command line: thin over the library, one-line errors with exit code 2, nothing half-written."""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from conftest import tree_bytes
from latentds.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_help_is_light():
    """`latentds --help` must not import torch, pyrender or numpy (it answers instantly)."""
    code = ("import sys; from latentds.cli import main; heavy = {'torch', 'pyrender', 'OpenGL', 'numpy', 'webdataset'};"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    result = run("--help")
    assert result.exit_code == 0 and "render" in result.output and "info" in result.output
    assert "--sequence" in run("render", "--help").output


def test_render_then_info_and_verify(phi_set, tmp_path):
    spec, reference = phi_set
    out = tmp_path / "phi"
    result = run("render", "--phi", "--n", "40", "--size", "16", "--shard-size", "10", "--workers", "1",
                 "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    assert "rendered 40 images" in result.stdout and "4 shards" in result.stdout
    assert tree_bytes(out) == tree_bytes(reference)
    info = run("info", str(out), "--verify")
    assert info.exit_code == 0 and "40 images of 16x16 px" in info.stdout and "phi_0" in info.stdout
    assert "verified" in info.stdout
    (out / "phi-000003.tar").write_bytes(b"garbage")
    bad = run("info", str(out), "--verify")
    assert bad.exit_code == 2 and "phi-000003.tar" in bad.stderr and "Traceback" not in bad.output


@pytest.mark.parametrize("args, message", [
    (["--n", "0"], "--n must be"),
    (["--size", "-4"], "--size must be"),
    (["--size", "100000"], "--size must be"),
    (["--sequence", "elbow", "--steps", "5"], "unknown --sequence factor 'elbow'"),
    (["--varied", "--sequence", "phi_0"], "--sequence needs --steps"),
    (["--varied", "--sequence", "phi_0", "--steps", "1"], "--steps must be at least 2"),
    (["--with", "normals"], "unknown --with"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    result = run("render", "--out", str(out), "--quiet", *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_unwritable_and_occupied_outputs(phi_set, tmp_path):
    (tmp_path / "file").write_text("x")
    result = run("render", "--n", "4", "--out", str(tmp_path / "file" / "sub"))
    assert result.exit_code == 2 and "cannot create --out" in result.stderr
    _, reference = phi_set
    before = tree_bytes(reference)
    result = run("render", "--n", "5", "--size", "16", "--out", str(reference), "--quiet")
    assert result.exit_code == 2 and "holds another dataset" in result.stderr
    assert tree_bytes(reference) == before


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("LATENTDS_GL_PLATFORM", "PYOPENGL_PLATFORM")}
    return {**env, **extra}


@pytest.mark.slow
def test_no_headless_gl_is_a_clear_error(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "latentds.cli", "render", "--n", "4", "--out", str(out)],
                          capture_output=True, text=True, env=_clean_env(PYOPENGL_PLATFORM="nonexistent"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: headless OpenGL failed with PYOPENGL_PLATFORM=nonexistent")
    assert "libegl1" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_killed_render_resumes_to_identical_bytes(tmp_path):
    args = ["render", "--phi", "--n", "1200", "--size", "16", "--shard-size", "100", "--workers", "1", "--quiet"]
    cmd = [sys.executable, "-m", "latentds.cli", *args]
    first = tmp_path / "first"
    proc = subprocess.Popen([*cmd, "--out", str(first)], env=_clean_env())
    deadline = time.time() + 120
    while not list(first.glob("*.tar")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(first.glob("*.tar")) and not (first / "manifest.json").exists()  # really cut off mid-way
    subprocess.run([*cmd, "--out", str(first)], env=_clean_env(), check=True, capture_output=True)
    whole = tmp_path / "whole"
    assert run(*args, "--out", str(whole)).exit_code == 0
    assert tree_bytes(first) == tree_bytes(whole)


@pytest.mark.parametrize("args,message", [
    (["render", "--out", "FILE", "--n", "3"], "Invalid value for '--out'"),
    (["pack", "celebA", "ROOT"], "unknown dataset 'celebA' (did you mean 'celeba'?)"),
    (["study", "kl-weight", "--scale", "huge"], "'huge' is not one of 'smoke', 'cpu', 'full'"),
    (["render", "--bogus"], "--bogus"),  # click's wording: "No such option: --bogus" in 8.2.0-8.3.0, quoted in 8.5.1
])
def test_usage_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    """click's usage errors (an unknown option, a value outside its choices, a file for a directory) follow the
    rule of every other error: one line naming the mistake and where to read more."""
    (tmp_path / "FILE").write_text("mine")
    args = [str(tmp_path / a) if a in ("FILE", "ROOT") else a for a in args]
    proc = subprocess.run([sys.executable, "-m", "latentds.cli", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], proc.stderr
    assert f"(see 'latentds {args[0]} --help')" in lines[0]
    assert (tmp_path / "FILE").read_text() == "mine"
    version = subprocess.run([sys.executable, "-m", "latentds.cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "latentds, version" in version.stdout
