"""The shard-set contract (latentds.shardsets.spec): a third kind of shard set is one class, produced by the same
producer into a set that latentds loads, describes and verifies; render and pack share the header, the checks and
the card's Loading section; the producer's engine loop and restart message."""

import json
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

import public_fixtures as fx
from conftest import tree_bytes
from latentds import load_shards
from latentds.cli import main
from latentds.datasets.pack import PackSpec, pack_dataset
from latentds.errors import InvalidParameterError, ShardError
from latentds.render import RenderSpec
from latentds.render.manifest import dataset_card
from latentds.shardsets import engines, producer
from latentds.shardsets.encoders import encode_json, encode_png
from latentds.shardsets.manifest import loading_section, read_manifest, verify_shards
from latentds.shardsets.spec import HEADER, ProducibleSpec, ShardSetSpec


@dataclass(frozen=True)
class Noise(ShardSetSpec):
    """A third kind of shard set, in one class: seeded noise images labelled with their mean."""

    generator: ClassVar[str] = "tests.noise"

    n: int = 10
    size: int = 8
    seed: int = 0
    shard_size: int = 4
    name: str = "noise"

    def __post_init__(self):
        self.check()

    @property
    def total(self) -> int:
        return self.n

    def command(self) -> str:
        return f"noise --n {self.n} --size {self.size} --seed {self.seed} --shard-size {self.shard_size}"

    def manifest_fields(self, records):
        return {"description": "uniform noise", "summary": f"noise, seed {self.seed}",
                "members": {"png": "8-bit RGB noise", "json": "index and mean"}}

    def card(self, manifest):
        return f"# {manifest['name']}\n\n    {manifest['command']}\n\n{loading_section(manifest)}"

    def samples(self, shard):
        for i in self.shard_ranges()[shard]:
            pixels = np.random.default_rng([self.seed, i]).integers(0, 256, (self.size, self.size, 3), np.uint8)
            yield {"__key__": f"{i:09d}", "png": encode_png(pixels),
                   "json": encode_json({"index": i, "mean": float(pixels.mean())})}


class Stop(Exception):
    """Raised by ``stop_at_shard_2``'s writer, as an interrupted run would stop."""


def stop_at_shard_2(spec, out):
    """Produce ``spec`` into ``out`` in one worker until shard 2 starts (shards 0 and 1 finished), then stop."""

    def stops_at_shard_2(spec, shard, out, on_samples):
        if shard == 2:
            raise Stop
        return producer.write_samples(spec, shard, out, on_samples)

    with pytest.raises(Stop):
        producer.produce_shards(spec, out, stops_at_shard_2, workers=1, progress=False)

def test_a_third_kind_of_shard_set_is_one_class(tmp_path):
    spec = Noise()
    assert isinstance(spec, ProducibleSpec)
    report = producer.produce_shards(spec, tmp_path, workers=1, progress=False)
    assert report.done == 10 and verify_shards(tmp_path) == []
    manifest = read_manifest(tmp_path)
    assert list(manifest)[:len(HEADER)] == list(HEADER) and manifest["params"] == spec.params()
    assert manifest["count"] == 10 and [r["count"] for r in manifest["shards"]] == [4, 4, 2]
    assert [r["name"] for r in manifest["shards"]] == [f"noise-{i:06d}.tar" for i in range(3)]
    items = list(load_shards(tmp_path, value_range="0,1"))
    assert [item["__key__"] for item in items] == [f"{i:09d}" for i in range(10)]
    for item in items:
        assert item["image"].shape == (3, 8, 8)
        assert abs(float(item["image"].mean()) * 255 - item["labels"]["mean"]) < 1e-3
    assert "## Loading" in (tmp_path / "README.md").read_text()
    info = CliRunner().invoke(main, ["info", str(tmp_path), "--verify"])
    assert info.exit_code == 0 and "noise: 10 images of 8x8 px (noise, seed 0)" in info.stdout

    # It resumes like the others: a lost shard is written again, to the same bytes.
    before = tree_bytes(tmp_path)
    (tmp_path / "noise-000001.tar").unlink()
    again = producer.produce_shards(spec, tmp_path, workers=1, progress=False)
    assert again.done == 4 and tree_bytes(tmp_path) == before
    # ... and another spec there is another dataset.
    with pytest.raises(Exception, match="holds another dataset"):
        producer.produce_shards(Noise(seed=1), tmp_path, workers=1, progress=False)


@pytest.mark.slow
def test_the_same_bytes_from_worker_processes_for_a_third_kind(tmp_path):
    producer.produce_shards(Noise(n=24), tmp_path / "one", workers=1, progress=False)
    producer.produce_shards(Noise(n=24), tmp_path / "two", workers=2, progress=False)
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "two")


def test_an_incomplete_spec_is_named_before_anything_is_written(tmp_path):
    class NoSamples:
        name = "x"

        def params(self):
            return {"generator": "tests.x"}

        def shard_ranges(self):
            return [range(2)]

        def shard_name(self, i):
            return f"x-{i:06d}.tar"

    with pytest.raises(TypeError, match="no finish; no samples"):
        producer.produce_shards(NoSamples(), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()

    @dataclass(frozen=True)
    class NoMembers(Noise):
        def manifest_fields(self, records):
            return {"description": "d", "summary": "s"}

    with pytest.raises(TypeError, match="gives no members"):
        NoMembers().manifest([])

    @dataclass(frozen=True)
    class Unplaced(Noise):
        manifest_keys: ClassVar[tuple] = HEADER

        def manifest_fields(self, records):
            return {**super().manifest_fields(records), "extra": 1}

    with pytest.raises(TypeError, match="does not place extra"):
        Unplaced().manifest([])


@pytest.mark.parametrize("make, message", [
    (lambda: Noise(n=0), "--n must be a whole number from 1"),
    (lambda: Noise(size=4), "--size must be from 8 to 1024"),
    (lambda: Noise(seed=-1), "--seed must be a non-negative"),
    (lambda: Noise(shard_size=0), "--shard-size must be at least 1"),
    (lambda: Noise(name="a/b"), "--name 'a/b' may hold only"),
    (lambda: Noise(n=10**9, shard_size=1), "makes 1,000,000,000 shards"),
    (lambda: RenderSpec("phi", size=2000), "--size must be from 8 to 1024"),
    (lambda: RenderSpec("phi", seed=True), "--seed must be a non-negative"),
    (lambda: PackSpec("utkface", "all", "/data", 10, size=4), "--size must be from 8 to 1024"),
    (lambda: PackSpec("utkface", "all", "/data", 10, shard_size=0), "--shard-size must be at least 1"),
    (lambda: PackSpec("utkface", "all", "/data", 10, name="a b"), "may hold only letters"),
    (lambda: PackSpec("utkface", "all", "/data", 0), "the number of images must be a whole number"),
])
def test_render_pack_and_any_kind_share_the_checks(make, message):
    with pytest.raises(InvalidParameterError, match=message.replace("-", r"\-")):
        make()


def test_render_and_pack_share_the_header_and_the_loading_section(phi_set, tmp_path):
    _, rendered = phi_set
    root = tmp_path / "src"
    root.mkdir()
    pack_dataset("food101", fx.BUILDERS["food101"](root)["root"], tmp_path / "packed", size=16, shard_size=4,
                 workers=1, progress=False)
    for directory in (rendered, tmp_path / "packed"):
        manifest = read_manifest(directory)
        assert set(HEADER) <= set(manifest)
        card = (directory / "README.md").read_text()
        loading = loading_section(manifest, "decoded tensors, a fixed-length factor vector with a mask for missing "
                                            "joints") if directory == rendered else loading_section(manifest)
        assert loading in card
        for reader in ("latentds.load_shards", "wds.WebDataset", "ray.data.read_webdataset",
                       'load_dataset("webdataset"', "tarfile.open"):
            assert reader in loading
    assert dataset_card(read_manifest(rendered)) == (rendered / "README.md").read_text()


def test_render_params_keep_their_form():
    """The params recorded in manifests (and compared on resume) keep their keys and order."""
    spec = RenderSpec("varied", n=8, size=16, sequence="phi_0", steps=4, extras=("mask", "depth"))
    assert list(spec.params()) == ["generator", "generator_version", "preset", "n", "size", "seed", "shard_size",
                                   "sequence", "steps", "extras", "name"]
    assert spec.params()["extras"] == ["depth", "mask"]
    assert RenderSpec("varied", n=8, identities=3).params()["identities"] == 3
    pack = PackSpec("utkface", "all", "/data", 10, size=None)
    assert list(pack.params()) == ["generator", "generator_version", "dataset", "split", "count", "size",
                                   "shard_size", "name"]
    assert pack.command().startswith("latentds pack utkface /data ") and " ROOT " in pack.recorded_command()


def test_a_lenient_read_accepts_foreign_manifests_but_never_unsafe_names(tmp_path):
    assert read_manifest(tmp_path, strict=False) is None
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"name": "a.tar", "count": 3}]}))
    assert read_manifest(tmp_path, strict=False)["shards"][0]["count"] == 3
    with pytest.raises(ShardError, match="not a latentds shard manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"name": "../a.tar", "count": 3}]}))
    with pytest.raises(ShardError, match="not a plain file name inside the set"):
        read_manifest(tmp_path, strict=False)


def test_the_restart_message_counts_the_shards_left_after_a_resume(tmp_path, monkeypatch, capsys):
    spec = Noise(n=20, shard_size=4)  # 5 shards

    stop_at_shard_2(spec, tmp_path)  # 0 and 1 done
    real_run_local = engines.run_local
    starts = []

    def pool_dies_once(write, spec, out, todo, workers, update):
        starts.append(list(todo))
        if len(starts) == 1:  # one more shard finishes, then a worker dies
            yield from real_run_local(write, spec, out, starts[0][:1], 1, update)
            raise BrokenProcessPool
        yield from real_run_local(write, spec, out, starts[-1], 1, update)

    monkeypatch.setattr(engines, "run_local", pool_dies_once)
    report = producer.produce_shards(spec, tmp_path, workers=2, progress=False)
    assert starts == [[2, 3, 4], [3, 4]] and report.done == 12
    assert "restarting the pool for the 2 shards left" in capsys.readouterr().out
    assert producer.restart_message(1).endswith("the 1 shard left")


def test_the_engine_loop_keeps_a_few_shards_in_flight():
    submitted, pending = [], {}

    def submit(shard):
        submitted.append((shard, len(pending)))
        return f"h{shard}"

    out = list(engines.in_flight(range(7), 3, submit, lambda handles: handles[:2],
                                  lambda handle: {"handle": handle}, pending))
    assert [shard for shard, _ in out] == list(range(7)) and out[0][1] == {"handle": "h0"}
    assert max(in_flight for _, in_flight in submitted) == 2 and not pending


def test_a_failed_write_leaves_no_partial_file(tmp_path):
    def samples():
        yield {"__key__": "000000000", "json": b"{}"}
        raise ValueError("source broke")

    with pytest.raises(ValueError, match="source broke"):
        producer.write_tar_shard(tmp_path, "x-000000.tar", 0, samples())
    assert list(tmp_path.iterdir()) == []
    record = producer.write_tar_shard(tmp_path, "x-000000.tar", 0, iter([{"__key__": "000000000", "json": b"{}"}]))
    assert record["count"] == 1 and [p.name for p in tmp_path.iterdir()] == ["x-000000.tar"]
