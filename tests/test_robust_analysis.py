"""The analysis cache and outputs under misuse (issue 9): latents are reused only for the same weights, data and n;
a cache cut short is found out and encoded again; an unwritable --out is a one-line error before any work."""

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from latentds.analysis.encode import LABELS, LATENTS, MARKER, Codes, encode_dataset, weights_digest
from latentds.analysis.probes import run
from latentds.cli import main
from latentds.errors import CacheError, OutputDirectoryError
from latentds.render import RenderSpec, render_shards
from latentds.zoo.base import create
from latentds.zoo.trainer import train  # noqa: F401  (before any rendering: triton's LLVM loaded after Mesa's crashes)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("robust-analysis")
    render_shards(RenderSpec("varied", n=32, size=16, shard_size=16, seed=2), out / "varied", workers=1,
                  progress=False)
    return out / "varied"


def tiny_model(seed: int):
    torch.manual_seed(seed)
    return create("vae", image_size=16, width=8, latent_dim=4).eval()


def test_a_second_model_into_the_same_out_gets_its_own_latents(data, tmp_path):
    first, second = tiny_model(0), tiny_model(1)  # same family, config, data and n: only the weights differ
    run(first, data, tmp_path, probes=[], n=16, progress=False)
    assert Codes.load(tmp_path).source["weights"] == weights_digest(first)
    metrics = run(second, data, tmp_path, probes=[], n=16, progress=False)
    codes = Codes.load(tmp_path)
    assert codes.source["weights"] == weights_digest(second) and metrics["data"]["n_encoded"] == 16
    assert np.allclose(codes.latents, encode_dataset(second, data, n=16, progress=False).latents, atol=1e-6)
    stamp = (tmp_path / LATENTS).stat().st_mtime_ns
    run(second, data, tmp_path, probes=[], n=16, progress=False)  # the same model again: reused
    assert (tmp_path / LATENTS).stat().st_mtime_ns == stamp
    run(second, data, tmp_path, probes=[], n=8, progress=False)  # another n: encoded again
    assert len(Codes.load(tmp_path).keys) == 8


def _cut_short(directory: Path, data, model) -> None:
    """What a save killed between its two files leaves: latents of n=8 beside the labels of n=16."""
    encode_dataset(model, data, n=16, progress=False).save(directory)
    other = directory / "other"
    encode_dataset(model, data, n=8, progress=False).save(other)
    (directory / LATENTS).write_bytes((other / LATENTS).read_bytes())


@pytest.mark.parametrize("damage", ["truncated latents", "labels of another save", "no labels"])
def test_a_cache_cut_short_is_named_on_load_and_encoded_again_by_run(damage, data, tmp_path):
    model = tiny_model(0)
    if damage == "labels of another save":
        _cut_short(tmp_path, data, model)
    else:
        encode_dataset(model, data, n=16, progress=False).save(tmp_path)
        if damage == "truncated latents":
            (tmp_path / LATENTS).write_bytes((tmp_path / LATENTS).read_bytes()[:300])
        else:
            (tmp_path / LABELS).unlink()
    with pytest.raises(CacheError, match=f"encoded latents in {tmp_path} are damaged or incomplete"):
        Codes.load(tmp_path)
    metrics = run(model, data, tmp_path, probes=[], n=16, progress=False)
    codes = Codes.load(tmp_path)
    assert metrics["data"]["n_encoded"] == len(codes.keys) == len(codes.latents) == 16


def test_saving_leaves_no_partial_files_and_a_failed_save_keeps_the_old_cache(data, tmp_path, monkeypatch):
    model = tiny_model(0)
    old = encode_dataset(model, data, n=16, progress=False)
    old.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LABELS, LATENTS, MARKER])
    import safetensors.numpy

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.numpy, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        encode_dataset(model, data, n=8, progress=False).save(tmp_path)
    again = Codes.load(tmp_path)  # the labels were not replaced ahead of their latents
    assert again.keys == old.keys and np.array_equal(again.latents, old.latents)


def test_analyze_into_a_read_only_out_is_a_one_line_error(data, tmp_path, read_only):
    tiny_model(0).save_pretrained(tmp_path / "model")
    out = read_only / "analysis"
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "model"), "--data", str(data), "--out", str(out),
                                       "--n", "8", "--probes", "pca", "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot write to --out {out} (")
    assert lines[0].endswith("; choose a writable directory")
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.slow
def test_analyze_refuses_an_out_that_holds_files_it_did_not_write(data, tmp_path):
    """--out may be new, empty or an earlier analysis' own; a user's files there are never overwritten."""
    model = tiny_model(0)
    mine = tmp_path / "mine"
    (mine / "figures").mkdir(parents=True)
    files = {"metrics.json": "my thesis numbers", "report.html": "my report", "figures/pca_strips.png": "img"}
    for name, text in files.items():
        (mine / name).write_text(text)
    with pytest.raises(OutputDirectoryError, match="holds files latentds analyze did not write"):
        run(model, data, mine, probes=["pca"], n=16, progress=False)
    assert {name: (mine / name).read_text() for name in files} == files  # untouched
    out = tmp_path / "analysis"
    first = run(model, data, out, probes=["pca"], n=16, progress=False)
    again = run(model, data, out, probes=["pca"], n=16, progress=False)  # its own --out: rewritten
    assert first["pca"] == again["pca"] and (out / MARKER).exists()
    legacy = tmp_path / "legacy"  # an --out of a version before the marker: recognised by its metrics.json
    legacy.mkdir()
    (legacy / "metrics.json").write_text((out / "metrics.json").read_text())
    assert run(model, data, legacy, probes=["pca"], n=16, progress=False)["pca"] == first["pca"]
    stopped = tmp_path / "stopped"  # ... or one stopped before its metrics.json: recognised by its latents cache
    stopped.mkdir()
    for name in ("latents.safetensors", "labels.jsonl"):
        (stopped / name).write_bytes((out / name).read_bytes())
    (stopped / "figures").mkdir()
    assert run(model, data, stopped, probes=["pca"], n=16, progress=False)["pca"] == first["pca"]
    fake = tmp_path / "fake"  # a file of that name that is not a latents cache does not count
    fake.mkdir()
    (fake / "latents.safetensors").write_text("my own data")
    with pytest.raises(OutputDirectoryError, match="did not write"):
        run(model, data, fake, probes=["pca"], n=16, progress=False)


def test_sequence_data_that_does_not_exist_is_an_error_before_anything_is_written(data, tmp_path):
    from latentds.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="--sequence-data: .*nope does not exist"):
        run(tiny_model(0), data, tmp_path / "out", probes=["interpolation"], sequence_data=tmp_path / "nope",
            progress=False)
    assert not (tmp_path / "out").exists()
