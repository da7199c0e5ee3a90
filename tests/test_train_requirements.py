"""What a family needs from the data is checked before training starts, naming the command that makes suitable
data; resizing is said, never silent; a wrong --data directory and the default render preset are named."""

import pytest
from click.testing import CliRunner

from latentds.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(("recipe", "words"), [
    ("zoo/cycle_vae", ["pairs", "'identity'", "latentds render --varied --identities"]),
    ("zoo/clamped_vae", ["--sequence", "latentds render --varied --n 2400 --sequence"]),
])
def test_family_data_requirement_before_training(phi_set, tmp_path, recipe, words):
    _, data = phi_set
    out = tmp_path / "run"
    result = run("train", recipe, "--data", str(data), "--out", str(out), "--quiet", "--batch-size", "8",
                 "--set", "model.image_size=16", "--set", "data.num_workers=0")
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: ") and all(w in line for w in words), result.stderr
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())  # nothing trained, nothing written


@pytest.mark.slow
def test_resize_is_said_once(phi_set, tmp_path):
    _, data = phi_set  # 16 px images; zoo/vae's model takes 64 px
    result = run("train", "zoo/vae", "--data", str(data), "--out", str(tmp_path / "run"), "--quiet",
                 "--max-steps", "1", "--batch-size", "8", "--set", "data.num_workers=0",
                 "--set", "train.sample_every_epoch=false")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "16 px" in notes[0] and "upsampled to 64 px" in notes[0]
    assert "--set model.image_size=16" in notes[0]
    same = run("train", "zoo/vae", "--data", str(data), "--out", str(tmp_path / "run16"), "--quiet",
               "--max-steps", "1", "--batch-size", "8", "--set", "data.num_workers=0",
               "--set", "model.image_size=16", "--set", "train.sample_every_epoch=false")
    assert same.exit_code == 0 and "note: " not in same.stderr


def test_a_missing_data_directory_is_named(tmp_path):
    result = run("train", "zoo/vae", "--data", str(tmp_path / "phi10"), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert f"no shard set at {tmp_path / 'phi10'} (no manifest.json" in result.stderr
    assert "latentds render" in result.stderr


def test_render_says_which_preset(tmp_path):
    result = run("render", "--n", "4", "--size", "16", "--workers", "1", "--out", str(tmp_path / "d"), "--quiet")
    assert result.exit_code == 0, result.output
    assert "preset: phi (the default" in result.stdout
    explicit = run("render", "--phi", "--n", "4", "--size", "16", "--workers", "1", "--out", str(tmp_path / "e"),
                   "--quiet")
    assert "preset:" not in explicit.output
    mistake = run("render", "--n", "0", "--out", str(tmp_path / "f"))  # an error stays one line
    assert mistake.exit_code == 2 and len(mistake.stderr.strip().splitlines()) == 1
