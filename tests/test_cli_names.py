"""Every name a user types is checked before torch is imported: exit 2, one line, "did you mean"."""

import subprocess
import sys

import pytest

# Runs the CLI in this process and reports, after it exits, whether torch (or numpy's heavier users) got imported.
WRAPPER = """
import sys
from latentds.cli import main
try:
    main(sys.argv[1:], prog_name="latentds")
finally:
    sys.stderr.write("\\nHEAVY=" + ",".join(sorted({"torch", "torchvision", "sklearn"} & set(sys.modules))) + "\\n")
"""

TYPOS = [
    (["train", "zoo/vae_dsic", "--data", "d", "--out", "o"], "did you mean 'zoo/vae_disc'?"),
    (["train", "zoo/vae", "--data", "d", "--out", "o", "--set", "model.latnt_dim=8"], "did you mean 'latent_dim'?"),
    (["train", "zoo/vae", "--data", "d", "--out", "o", "--set", "train.epcohs=1"], "did you mean 'epochs'?"),
    (["train", "zoo/vae", "--data", "d", "--out", "o", "--set", "model.family=vea"], "did you mean 'vae'?"),
    (["train", "zoo/vae_disc", "--out", "o", "--set", "train.groups.discriminator.lr_=1"], "did you mean 'lr'?"),
    (["analyze", "runs/x", "--data", "d", "--out", "o", "--probes", "pca,umpa"], "did you mean 'umap'?"),
    (["study", "disc-strategie"], "did you mean 'disc-strategies'?"),
    (["pack", "celebb", "/nonexistent"], "did you mean 'celeba'?"),
]


@pytest.mark.parametrize(("args", "hint"), TYPOS, ids=[" ".join(a[:2]) + " " + h.split("'")[1] for a, h in TYPOS])
def test_typo_is_answered_before_torch(args, hint, tmp_path):
    result = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert hint in result.stderr
    assert "Traceback" not in result.stderr
    message = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("HEAVY=")]
    assert len(message) == 1 and message[0].startswith("Error: "), result.stderr
    assert "HEAVY=\n" in result.stderr, result.stderr  # nothing heavy was imported


def test_names_read_from_source_agree_with_the_registry():
    """The family fields read with ast (zoo/names.py) are the imported classes' config fields."""
    import dataclasses

    from latentds.zoo.base import REGISTRY as FAMILIES
    from latentds.zoo.names import family_fields

    read = family_fields()
    assert sorted(read) == FAMILIES.names()
    for family in FAMILIES.names():
        assert set(read[family]) == {f.name for f in dataclasses.fields(FAMILIES.get(family).Config)}, family
