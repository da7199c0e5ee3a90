"""The claim's users: a shard set's marker (kind, parameters, its shards as one series), directories written
before the marker (shard sets, analyses, studies, runs) still recognised, and one kind's directory refused to
another."""

from __future__ import annotations

import json

import pytest
from test_shardset_spec import Noise, stop_at_shard_2

from latentds.errors import OutputDirectoryError
from latentds.shardsets import producer
from latentds.shardsets.claim import claim
from latentds.shardsets.marker import MARKER, Series, read_marker


def test_a_shard_sets_marker_records_its_parameters_and_shards_as_a_series_until_it_is_finished(tmp_path):
    spec = Noise(n=10, shard_size=4)

    stop_at_shard_2(spec, tmp_path)
    marker = read_marker(tmp_path)
    assert marker.kind == "shards" and marker.identity == spec.params()
    assert marker.files == ("manifest.json", "README.md", ".latentds-progress.jsonl")
    assert marker.series == (Series("noise-", 6, ".tar", 3),)
    assert all(marker.owns(p.name) for p in tmp_path.iterdir())
    assert producer.produce_shards(spec, tmp_path, workers=1, progress=False).done == 2
    assert not (tmp_path / MARKER).exists()  # finished: the manifest says what the set holds


def test_a_finished_or_earlier_versions_set_is_resumed_and_overwritten_only_by_its_own_files(tmp_path):
    producer.produce_shards(Noise(n=10), tmp_path, workers=1, progress=False)
    assert not (tmp_path / MARKER).exists()  # a finished set: recognised by its manifest
    (tmp_path / "noise-000001.tar").unlink()
    assert producer.produce_shards(Noise(n=10), tmp_path, workers=1, progress=False).done == 4
    progress = tmp_path / ".latentds-progress.jsonl"  # ... and a set it left unfinished
    progress.write_text(json.dumps({"params": Noise(n=10).params()}) + "\n")
    (tmp_path / "manifest.json").unlink()
    assert producer.produce_shards(Noise(n=10), tmp_path, workers=1, progress=False).done == 10
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirectoryError, match=r"did not write \(notes.txt\) beside its latentds shard set"):
        producer.produce_shards(Noise(n=12), tmp_path, workers=1, progress=False, overwrite=True)
    assert (tmp_path / "noise-000002.tar").is_file() and (tmp_path / "notes.txt").is_file()
    (tmp_path / "notes.txt").unlink()
    report = producer.produce_shards(Noise(n=12), tmp_path, workers=1, progress=False, overwrite=True)
    assert report.manifest["count"] == 12 and sorted(p.name for p in tmp_path.iterdir()) == [
        "README.md", "manifest.json", "noise-000000.tar", "noise-000001.tar", "noise-000002.tar"]


def test_a_damaged_manifest_of_a_claimed_set_needs_overwrite(tmp_path):
    producer.produce_shards(Noise(n=10), tmp_path, workers=1, progress=False)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(manifest.read_text()[:200])  # cut short: still recognisably latentds'
    with pytest.raises(OutputDirectoryError, match="holds a damaged shard set: .*manifest.json is damaged.*"
                                                   "--overwrite"):
        producer.produce_shards(Noise(n=10), tmp_path, workers=1, progress=False)
    report = producer.produce_shards(Noise(n=10), tmp_path, workers=1, progress=False, overwrite=True)
    assert report.done == 10 and json.loads((tmp_path / "manifest.json").read_text())["count"] == 10


def test_one_kinds_directory_is_refused_to_another(tmp_path):
    producer.produce_shards(Noise(n=10), tmp_path / "set", workers=1, progress=False)
    from latentds.analysis.runner import claim_output

    with pytest.raises(OutputDirectoryError, match="is not empty and holds no latentds analysis: it holds files "
                                                   "latentds analyze did not write"):
        claim_output(tmp_path / "set")  # a finished set has no marker: its files are not analyze's
    claim(tmp_path / "run", "train", {"model": {}}, files=["recipe.toml"]).release()
    with pytest.raises(OutputDirectoryError, match="holds a training run"):
        producer.produce_shards(Noise(n=10), tmp_path / "run", workers=1, progress=False, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [MARKER]


def test_directories_of_earlier_versions_are_recognised(tmp_path):
    from latentds.analysis.runner import claim_output
    from latentds.studies.runner import claim_study

    analysis = tmp_path / "analysis"
    analysis.mkdir()
    (analysis / ".latentds-analysis").write_text("latentds analyze writes here\n")
    (analysis / "report.html").write_text("an earlier report")
    with claim_output(analysis) as taken:
        assert taken.state == "resumed"
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text(json.dumps({"study": "kl-weight", "scale": "smoke"}) + "\n")
    with claim_study(study, "kl-weight", "smoke") as taken:
        assert taken.state == "resumed"
    with pytest.raises(OutputDirectoryError, match="holds study kl-weight at scale smoke; choose another --out"):
        claim_study(study, "kl-weight", "cpu")


def test_a_run_directory_written_before_the_marker_is_recognised_and_restarted_without_foreign_files(tmp_path):
    from latentds.zoo.recipe import load_recipe
    from latentds.zoo.run_directory import claim_run

    recipe = load_recipe("zoo/vae", ["model.latent_dim=4"])
    (tmp_path / "recipe.toml").write_text(recipe.to_toml())  # stopped before its first checkpoint
    with pytest.raises(OutputDirectoryError, match="already holds a training run; add --resume to continue it"):
        claim_run(tmp_path, recipe, resume=False)
    with pytest.raises(OutputDirectoryError, match="was trained with another model or data section"):
        claim_run(tmp_path, load_recipe("zoo/vae", ["model.latent_dim=8"]), resume=True)
    (tmp_path / "notes.txt").write_text("mine")
    taken, state = claim_run(tmp_path, recipe, resume=True)  # no checkpoint: the run starts again
    taken.release()
    assert state is None and taken.state == "overwritten"
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "notes.txt"]
    assert read_marker(tmp_path).identity["model"]["latent_dim"] == 4
