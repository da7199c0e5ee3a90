"""Shard sets: contract, determinism, resume, refusal of foreign data."""

import io
import json
import tarfile

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from conftest import tree_bytes
from latentds.errors import OutputDirectoryError
from latentds.render import RenderSpec, render_shards, verify_shards
from latentds.render import job as job_module
from latentds.shardsets.manifest import read_manifest


def test_shard_set_follows_the_contract(phi_set):
    spec, out = phi_set
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.md", "manifest.json"] + [f"phi-{i:06d}.tar" for i in range(4)]
    manifest = read_manifest(out)
    assert manifest["count"] == 40 and manifest["image_size"] == 16 and manifest["seed"] == 0
    assert [s["count"] for s in manifest["shards"]] == [10] * 4
    assert {f["name"] for f in manifest["factors"] if f["varies"]} == {"phi_0"}
    assert manifest["params"] == spec.params()
    assert verify_shards(out) == []
    card = (out / "README.md").read_text()
    assert "phi_0" in card and "latentds render --phi --n 40 --size 16" in card


def test_plain_tarfile_reads_every_sample(phi_set):
    spec, out = phi_set
    keys = []
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
            assert all(m.mtime == members[0].mtime for m in members)
            for m in members:
                key, ext = m.name.split(".", 1)
                assert ext in ("png", "json")
                if ext == "json":
                    labels = json.loads(tar.extractfile(m).read())
                    assert labels["key"] == key and labels["index"] == int(key)
                    keys.append(key)
                else:
                    image = Image.open(io.BytesIO(tar.extractfile(m).read()))
                    assert image.mode == "RGB" and image.size == (16, 16)
    assert keys == [f"{i:09d}" for i in range(40)]


def test_webdataset_reads_the_shards_with_its_own_decoders(phi_set):
    spec, out = phi_set
    urls = str(out / "phi-{000000..000003}.tar")
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb").to_tuple("__key__", "png", "json"))
    assert len(samples) == 40
    key, image, labels = samples[17]
    assert key == "000000017" and image.shape == (16, 16, 3) and image.dtype == np.float32
    assert labels["index"] == 17 and -135 <= labels["joints"][0]["phi"] <= 135


@pytest.mark.slow
def test_same_bytes_whatever_the_worker_count(phi_set, tmp_path):
    spec, out = phi_set
    render_shards(spec, tmp_path / "two", workers=2, progress=False)
    assert tree_bytes(tmp_path / "two") == tree_bytes(out)


def test_extras_are_written_and_decodable(tmp_path):
    spec = RenderSpec("varied", n=6, size=16, shard_size=6, extras=("mask", "depth"), seed=3)
    render_shards(spec, tmp_path, workers=1, progress=False)
    with tarfile.open(tmp_path / "varied-000000.tar") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert len(files) == 6 * 4
    for i in range(6):
        key = f"{i:09d}"
        labels = json.loads(files[f"{key}.json"])
        mask = np.asarray(Image.open(io.BytesIO(files[f"{key}.mask.png"])))
        depth = np.load(io.BytesIO(files[f"{key}.depth.npy"]), allow_pickle=False)
        assert mask.shape == depth.shape == (16, 16) and depth.dtype == np.float32
        assert mask.max() <= labels["n_cuboids"] and np.array_equal(mask > 0, depth > 0)
    assert set(read_manifest(tmp_path)["members"]) == {"png", "json", "depth.npy", "mask.png"}


def test_sequence_render_labels_groups_and_steps(tmp_path):
    spec = RenderSpec("varied", n=8, size=16, shard_size=3, sequence="phi_1", steps=4)
    render_shards(spec, tmp_path, workers=1, progress=False)
    labels = [s for (s,) in wds.WebDataset(str(tmp_path / "varied-{000000..000002}.tar"), shardshuffle=False)
              .decode().to_tuple("json")]
    assert [(l["sequence"]["group"], l["sequence"]["step"]) for l in labels] == [(g, s) for g in range(2)
                                                                                for s in range(4)]
    assert np.allclose([l["joints"][1]["phi"] for l in labels[:4]], np.linspace(-135, 135, 4))
    assert "phi_1" in read_manifest(tmp_path)["command"]


class _Killed(Exception):
    pass


def test_resume_after_an_interruption_gives_identical_bytes(phi_set, tmp_path, monkeypatch):
    spec, out = phi_set
    real = job_module.write_shard
    calls = []

    def dies_on_third_shard(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:  # leave a half-written shard behind, as a kill would
            (tmp_path / ".phi-000002.tar.partial").write_bytes(b"half a tar")
            raise _Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(job_module, "write_shard", dies_on_third_shard)
    with pytest.raises(_Killed):
        render_shards(spec, tmp_path, workers=1, progress=False)
    assert not (tmp_path / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["phi-000000.tar", "phi-000001.tar"]

    calls.clear()
    monkeypatch.setattr(job_module, "write_shard", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    report = render_shards(spec, tmp_path, workers=1, progress=False)
    assert calls == [2, 3]  # finished shards were kept, not rendered again
    assert report.done == 20
    assert tree_bytes(tmp_path) == tree_bytes(out)
    assert not list(tmp_path.glob(".*"))  # no progress file or partial shard left


def test_a_damaged_shard_is_rendered_again_and_verify_reports_it(phi_set, tmp_path):
    spec, out = phi_set
    for name, data in tree_bytes(out).items():
        (tmp_path / name).write_bytes(data)
    damaged = tmp_path / "phi-000001.tar"
    damaged.write_bytes(damaged.read_bytes()[:-1024])
    problems = verify_shards(tmp_path)
    assert len(problems) == 1 and problems[0].startswith("phi-000001.tar")
    report = render_shards(spec, tmp_path, workers=1, progress=False)
    assert report.done == 10
    assert tree_bytes(tmp_path) == tree_bytes(out)
    assert render_shards(spec, tmp_path, workers=1, progress=False).done == 0


def test_other_dataset_is_refused_unless_overwrite(phi_set, tmp_path):
    spec, out = phi_set
    render_shards(RenderSpec("phi", n=12, size=16, shard_size=10), tmp_path, workers=1, progress=False)
    before = tree_bytes(tmp_path)
    with pytest.raises(OutputDirectoryError, match="holds another dataset.*n=12 there, 40 asked.*--overwrite"):
        render_shards(spec, tmp_path, workers=1, progress=False)
    assert tree_bytes(tmp_path) == before
    render_shards(spec, tmp_path, workers=1, progress=False, overwrite=True)
    assert tree_bytes(tmp_path) == tree_bytes(out)


def test_foreign_files_are_never_touched(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(OutputDirectoryError, match="not empty and holds no latentds shard set"):
        render_shards(RenderSpec("phi", n=4, size=16), tmp_path, workers=1, progress=False, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_unwritable_output_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputDirectoryError, match="cannot create --out"):
        render_shards(RenderSpec("phi", n=4, size=16), blocker / "sub", workers=1, progress=False)


@pytest.fixture(scope="module")
def ray_cluster():
    import ray  # part of the test install ([test] pulls in [ray])

    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_engine_writes_the_same_bytes(phi_set, tmp_path, ray_cluster):
    spec, out = phi_set
    report = render_shards(spec, tmp_path, engine="ray", progress=False)
    assert report.workers == 2 and report.done == 40
    assert tree_bytes(tmp_path) == tree_bytes(out)


@pytest.mark.slow
def test_ray_data_reads_the_shards_without_latentds(phi_set, ray_cluster):
    spec, out = phi_set
    ds = ray_cluster.data.read_webdataset(sorted(str(p) for p in out.glob("*.tar")))
    rows = ds.take_all()
    assert len(rows) == 40
    assert sorted(r["__key__"] for r in rows) == [f"{i:09d}" for i in range(40)]
    row = rows[0]
    assert row["png"].shape == (16, 16, 3) and row["json"]["size"] == 16


def crashes_once(spec, shard, out, on_samples):
    """A write function whose first call in a marked directory kills its worker process, as a segfault would."""
    import os

    marker = out / ".crashed"
    if shard == 1 and not marker.exists():
        marker.write_text("")
        os._exit(1)
    from latentds.render.shard_writer import write_shard

    return write_shard(spec, shard, out, on_samples)


@pytest.mark.slow
def test_a_dead_worker_is_replaced_and_the_result_is_unchanged(phi_set, tmp_path, monkeypatch):
    import os

    from latentds.shardsets.producer import produce_shards

    spec, out = phi_set
    monkeypatch.setenv("LATENTDS_GL_PLATFORM", os.environ.get("PYOPENGL_PLATFORM", "egl"))
    report = produce_shards(spec, tmp_path, crashes_once, workers=2, progress=False)
    assert (tmp_path / ".crashed").exists() and report.done == 40
    (tmp_path / ".crashed").unlink()
    assert tree_bytes(tmp_path) == tree_bytes(out)
