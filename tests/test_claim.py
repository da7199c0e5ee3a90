"""Claiming an output directory (latentds.shardsets.claim): one lock, one marker, resume, overwrite and "remove
what this run wrote", and never a file latentds did not write deleted."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from latentds import __version__
from latentds.errors import DirectoryBusyError, OutputDirectoryError
from latentds.shardsets.claim import claim, record
from latentds.shardsets.lock import LOCK
from latentds.shardsets.marker import MARKER, Marker, Series, read_marker

FILES = ("result.json", "figures/")


def _write(directory, names):
    for name in names:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(name)


def test_a_new_claim_records_kind_identity_version_and_files_in_one_marker(tmp_path):
    out = tmp_path / "out"
    with claim(out, "analyze", {"seed": 1, "sizes": (8, 16)}, files=FILES,
               series=[Series("x-", 6, ".tar", 3)]) as taken:
        assert taken.state == "new" and taken.created and (out / LOCK).is_file()
        raw = json.loads((out / MARKER).read_text())
    assert raw == {"format": 1, "kind": "analyze", "identity": {"seed": 1, "sizes": [8, 16]},
                   "version": __version__, "files": ["result.json", "figures/"],
                   "series": [{"prefix": "x-", "digits": 6, "suffix": ".tar", "count": 3}]}
    assert not (out / LOCK).exists()  # released on leaving
    before = (out / MARKER).read_bytes()
    with claim(out, "analyze", {"seed": 1, "sizes": [8, 16]}, files=FILES) as again:
        assert again.state == "resumed" and again.found.identity == {"seed": 1, "sizes": [8, 16]}
    assert (out / MARKER).read_bytes() == before  # the same claim writes the same bytes


def test_a_second_process_is_refused_while_the_claim_is_held(tmp_path):
    out = tmp_path / "out"
    code = textwrap.dedent(f"""
        import sys
        from latentds.shardsets.claim import claim
        held = claim({str(out)!r}, "train", files=["recipe.toml"])
        print("held", flush=True)
        sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryBusyError, match=f"in use by another latentds process: train, pid {holder.pid}"):
            claim(out, "train", resume=True)
        assert read_marker(out).kind == "train"  # the refused claim changed nothing
    finally:
        holder.communicate("")
    with claim(out, "train", resume=True) as taken:  # the holder is gone: its claim is resumed
        assert taken.state == "resumed"


def test_resume_true_needs_a_claim_and_resume_false_refuses_one(tmp_path):
    new = tmp_path / "new" / "run"
    with pytest.raises(OutputDirectoryError, match=f"nothing to resume in {new}: it holds no training run; drop "
                                                   "--resume"):
        claim(new, "train", resume=True)
    assert not new.exists()  # the directory the refused claim made is gone
    run = tmp_path / "run"
    claim(run, "train", files=["recipe.toml"]).release()
    with pytest.raises(OutputDirectoryError, match="already holds a training run; add --resume to continue it"):
        claim(run, "train", resume=False)


def test_a_foreign_directory_is_refused_and_left_untouched(tmp_path):
    _write(tmp_path, ["notes.txt", "result.json"])
    with pytest.raises(OutputDirectoryError, match=r"is not empty and holds no latentds analysis: it holds files "
                                                   r"latentds analyze did not write \(notes.txt, result.json\)"):
        claim(tmp_path, "analyze", files=FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "result.json"]


def test_another_kind_is_refused_even_with_overwrite(tmp_path):
    claim(tmp_path, "study", {"study": "a"}, files=["results.md"]).release()
    with pytest.raises(OutputDirectoryError, match="holds a study \\(latentds study\\), not a training run"):
        claim(tmp_path, "train", overwrite=True)


def test_overwrite_removes_only_what_the_marker_records(tmp_path):
    taken = claim(tmp_path, "shards", {"n": 1}, files=["manifest.json", "figures/"],
                  series=[Series("s-", 6, ".tar", 2)])
    _write(tmp_path, ["manifest.json", "figures/a.png", "s-000000.tar", "s-000001.tar", ".s-000001.tar.partial"])
    taken.release()
    _write(tmp_path, ["notes.txt", "s-000002.tar", "s-mybackup.tar"])  # not the marker's: a user's files
    with pytest.raises(OutputDirectoryError, match=r"holds another latentds shard set; choose another --out"):
        claim(tmp_path, "shards", {"n": 2})
    with pytest.raises(OutputDirectoryError, match=r"holds files that latentds did not write \(notes.txt, "
                                                   r"s-000002.tar, s-mybackup.tar\) beside its latentds shard set"):
        claim(tmp_path, "shards", {"n": 2}, overwrite=True, exclusive=True)
    assert (tmp_path / "manifest.json").is_file()  # refused: nothing removed
    with claim(tmp_path, "shards", {"n": 2}, overwrite=True, files=["manifest.json"]) as again:
        assert again.state == "overwritten" and again.marker.identity == {"n": 2}
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [MARKER, "notes.txt", "s-000002.tar", "s-mybackup.tar"]


def test_remove_written_removes_this_runs_files_and_never_a_foreign_one(tmp_path):
    out = tmp_path / "run"
    taken = claim(out, "train", {"model": 1}, files=["recipe.toml", "figures/"])
    _write(out, ["recipe.toml", "figures/loss.png", "notes.txt"])  # notes.txt: put there by a user meanwhile
    taken.wrote("extra.json")
    assert read_marker(out).files == ("recipe.toml", "figures/", "extra.json")
    _write(out, ["extra.json"])
    taken.remove_written()
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # so the directory stays
    (out / "notes.txt").unlink()
    claim(out, "train", {"model": 1}, files=["recipe.toml"]).remove_written()
    assert out.exists()  # the claim did not make it: kept
    gone = tmp_path / "gone"
    claim(gone, "train", files=["recipe.toml"]).remove_written()
    assert not gone.exists()


def test_a_resumed_claim_removes_only_what_it_wrote_since(tmp_path):
    claim(tmp_path, "train", {"model": 1}, files=["recipe.toml"]).release()
    _write(tmp_path, ["recipe.toml"])
    resumed = claim(tmp_path, "train", {"model": 1}, resume=True, files=["recipe.toml"])
    resumed.wrote("late.json")
    _write(tmp_path, ["late.json"])
    resumed.remove_written()
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "recipe.toml"]


def test_a_damaged_marker_is_one_line_and_a_legacy_reader_adopts_an_old_directory(tmp_path):
    (tmp_path / MARKER).write_text("{not json")
    (tmp_path / "old.txt").write_text("an earlier version's output")
    with pytest.raises(OutputDirectoryError, match=f"{MARKER} is damaged .*choose another --out"):
        claim(tmp_path, "analyze")
    adopted = claim(tmp_path, "analyze", recognise=lambda: Marker("analyze", files=("old.txt",)))
    assert adopted.state == "resumed" and read_marker(tmp_path).files == ("old.txt",)


def test_a_series_owns_its_numbered_names_and_their_partial_files_only():
    marker = Marker("shards", files=("manifest.json",), series=(Series("phi-", 6, ".tar", 12),))
    assert all(marker.owns(n) for n in ("phi-000000.tar", "phi-000011.tar", ".phi-000003.tar.partial",
                                        "manifest.json", ".manifest.json.partial", MARKER))
    assert not any(marker.owns(n) for n in ("phi-000012.tar", "phi-00001.tar", "phi-mybackup.tar", "phi-0000001.tar",
                                            "notes.txt", ".partial"))
    assert Series.of(lambda i: f"phi-{i:06d}.tar", 12) == Series("phi-", 6, ".tar", 12)
    assert Series.of(lambda i: f"shard{i}.tar", 12) is None


def test_record_adds_to_a_marker_of_its_kind_and_leaves_another_kinds_alone(tmp_path):
    (tmp_path / "a").mkdir()
    record(tmp_path / "a", "analyze", ["latents.safetensors"])
    assert read_marker(tmp_path / "a") == Marker("analyze", None, __version__, ("latents.safetensors",))
    claim(tmp_path / "b", "train", files=["recipe.toml"]).release()
    before = (tmp_path / "b" / MARKER).read_bytes()
    record(tmp_path / "b", "analyze", ["latents.safetensors"])
    assert (tmp_path / "b" / MARKER).read_bytes() == before
