"""Factor vectors from a manifest's factor table (latentds.datasets.factors): the same vectors as the hand-written
cuboid accessor they replace, the path language, damaged labels, and a hand-built dSprites-style set."""

import io
import json
import math
import pickle
import tarfile

import numpy as np
import pytest
import torch

import latentds
from latentds.datasets.factors import MISSING, FactorVector, compile_path, expand_table, factor_accessor, parse_path
from latentds.errors import DamagedSampleError, ShardError
from latentds.render.factors import FACTORS, MAX_CUBOIDS, MAX_JOINTS, sample_labels

CUBOID_TABLE = [f.as_json(True) for f in FACTORS]


def old_cuboid_factors(labels: dict) -> tuple[np.ndarray, np.ndarray]:
    """The hand-written accessor the manifest-driven one replaced (latentds.datasets.cuboids.cuboid_factors,
    verbatim): the reference its vectors and masks must equal exactly."""
    joints, colors, light = labels["joints"], labels["colors"], labels["light"]
    missing_joints, missing_colors = MAX_JOINTS - len(joints), MAX_CUBOIDS - len(colors)
    values = [labels["n_cuboids"]]
    for joint in joints:
        values += (joint["phi"], joint["theta"], joint["lambda"])
    values += [0.0] * (3 * missing_joints)
    for color in colors:
        values += color
    values += [0.0] * (3 * missing_colors)
    values += (light["azimuth"], light["elevation"], light["intensity"], *light["color"],
               len(labels["spot_lights"]), len(labels["point_lights"]))
    present = ([True] * (1 + 3 * len(joints)) + [False] * (3 * missing_joints) + [True] * (3 * len(colors))
               + [False] * (3 * missing_colors) + [True] * 8)
    return np.array(values, dtype=np.float32), np.array(present, dtype=bool)


def _cuboid_labels():
    for seed in range(3):
        for i in range(1000):
            yield sample_labels("varied", seed, i, 16)
    for i in range(300):
        yield sample_labels("varied", 7, i, 16, identities=5)
        yield sample_labels("varied", 7, i, 16, sequence="phi_2,light_azimuth", steps=6)  # chains lengthened
        yield sample_labels("phi", 7, i, 16)


def test_vectors_and_masks_equal_the_hand_written_cuboid_accessor():
    vector = FactorVector(CUBOID_TABLE)
    counts = set()
    for labels in _cuboid_labels():
        values, present = vector(labels)
        expected_values, expected_present = old_cuboid_factors(labels)
        assert values.dtype == np.float32 and present.dtype == np.bool_
        assert np.array_equal(values, expected_values) and np.array_equal(present, expected_present)
        counts.add(labels["n_cuboids"])
    assert counts == {2, 3, 4}  # every chain length, so every pattern of missing joints and colours
    from latentds.datasets.cuboids import FACTOR_NAMES

    assert vector.names == FACTOR_NAMES == tuple(r["name"] for r in expand_table({"factors": CUBOID_TABLE}))


def test_a_returned_mask_is_the_callers_own():
    vector = FactorVector(CUBOID_TABLE)
    labels = sample_labels("varied", 0, 0, 16)
    _, mask = vector(labels)
    mask[:] = False
    assert vector(labels)[1].any()


@pytest.mark.parametrize("path, labels, value", [
    ("a", {"a": 3}, 3),
    ("a.b", {"a": {"b": 2.5}}, 2.5),
    ("a[1]", {"a": [7, 8]}, 8),
    ("a[2]", {"a": [7, 8]}, MISSING),
    ("a[0].b", {"a": [{"b": 1}]}, 1),
    ("a[1].b", {"a": [{"b": 1}]}, MISSING),
    ("a.b[1].c.d", {"a": {"b": [0, {"c": {"d": 4}}]}}, 4),
    ("a.b[3].c.d", {"a": {"b": [0, {"c": {"d": 4}}]}}, MISSING),
    ("a[0][1]", {"a": [[5, 6]]}, 6),
    ("len(a)", {"a": [1, 2, 3]}, 3),
    ("5_o_Clock_Shadow", {"5_o_Clock_Shadow": 1}, 1),  # CelebA's attribute names may start with a digit
    ("a.2b", {"a": {"2b": 7}}, 7),
    ("len(a[0].b)", {"a": [{"b": [1, 2]}]}, 2),
    ("len(a[1].b)", {"a": [{"b": [1, 2]}]}, MISSING),
])
def test_paths(path, labels, value):
    assert compile_path(path)(labels) == value if value is not MISSING else compile_path(path)(labels) is MISSING


@pytest.mark.parametrize("path", ["", "a.", "a[", "a[-1]", "a[x]", "a-b", "a b", "__import__('os').system('x')",
                                  "a.b()", "len(a", "a + 1", "a[0]]", None, 3])
def test_what_is_not_a_path_is_refused_before_any_sample(path):
    with pytest.raises(ValueError):
        parse_path(path)
    with pytest.raises(ShardError, match="factor 'f' of the manifest cannot be read"):
        FactorVector([{"name": "f", "type": "float", "path": path or "a."}])


def test_labels_that_do_not_fit_the_table_make_the_sample_damaged():
    table = [{"name": "x", "type": "float", "path": "pos[0]"}, {"name": "c", "type": "rgb", "path": "color"},
             {"name": "s", "type": "int", "path": "size.w"}]
    vector = FactorVector(table)
    good = {"pos": [1.5], "color": [0.1, 0.2, 0.3], "size": {"w": 4}}
    values, present = vector(good)
    assert values.tolist() == pytest.approx([1.5, 0.1, 0.2, 0.3, 4]) and present.all()
    values, present = vector(dict(good, pos=[]))  # past the end of a shorter list: absent, 0 and masked
    assert values[0] == 0 and present.tolist() == [False, True, True, True, True]
    for labels, factor in [({**good, "size": {}}, "s"), ({**good, "color": [0.1, 0.2]}, "c"),
                           ({**good, "color": "red"}, "c"), ({"color": [0, 0, 0], "size": {"w": 1}}, "x"),
                           ({**good, "pos": ["a"]}, "x"), ({**good, "size": 3}, "s")]:
        with pytest.raises(DamagedSampleError, match=f"no valid factor {factor} "):
            vector(labels)
    with pytest.raises(ShardError, match="needs a name and a type"):
        FactorVector([{"name": "x", "type": "complex"}])


def test_a_row_without_a_path_reads_the_label_of_its_name():
    assert FactorVector([{"name": "scale", "type": "float"}])({"scale": 0.5})[0].tolist() == [0.5]


def test_it_pickles_as_its_table():
    vector = pickle.loads(pickle.dumps(FactorVector(CUBOID_TABLE)))
    labels = sample_labels("varied", 1, 2, 16)
    assert all(np.array_equal(a, b) for a, b in zip(vector(labels), old_cuboid_factors(labels)))


def test_one_factor_accessor():
    manifest = {"factors": CUBOID_TABLE}
    labels = sample_labels("varied", 0, 3, 16)
    assert factor_accessor(manifest, "light_azimuth")(labels) == labels["light"]["azimuth"]
    assert factor_accessor(manifest, "color_0")(labels) == labels["colors"][0]
    with pytest.raises(ShardError, match="no factor 'elbow'"):
        factor_accessor(manifest, "elbow")


# --- a dSprites / 3D-Shapes style set, built by hand in the real on-disk layout ------------------------------------

SPRITE_FACTORS = [
    {"name": "shape", "type": "int", "range": [0, 2], "unit": "", "path": "shape", "varies": True,
     "description": "square, ellipse or heart"},
    {"name": "scale", "type": "float", "range": [0.5, 1.0], "unit": "", "path": "scale", "varies": True,
     "description": "size of the sprite"},
    {"name": "orientation", "type": "float", "range": [0, 360], "unit": "deg", "path": "orientation",
     "varies": True, "description": "rotation of the sprite"},
    {"name": "pos_x", "type": "float", "range": [0, 1], "unit": "", "path": "position[0]", "varies": True,
     "description": "horizontal position"},
    {"name": "pos_y", "type": "float", "range": [0, 1], "unit": "", "path": "position[1]", "varies": True,
     "description": "vertical position"},
    {"name": "color", "type": "rgb", "range": [0, 1], "unit": "", "path": "style.color", "varies": True,
     "description": "colour of the sprite (as in 3D Shapes' object hue)"},
]
SPRITE_NAMES = ["shape", "scale", "orientation", "pos_x", "pos_y", "color_r", "color_g", "color_b"]


def _sprite_labels(i: int) -> dict:
    rng = np.random.default_rng([11, i])
    return {"index": i, "shape": int(rng.integers(3)), "scale": float(rng.uniform(0.5, 1.0)),
            "orientation": float(rng.uniform(0, 360)), "position": [float(v) for v in rng.uniform(0, 1, 2)],
            "style": {"color": [float(v) for v in rng.uniform(0, 1, 3)]}}


@pytest.fixture(scope="module")
def sprite_set(tmp_path_factory):
    from latentds.shardsets.encoders import encode_json, encode_png
    from latentds.shardsets.manifest import FORMAT, FORMAT_VERSION, file_sha256, manifest_problems, write_manifest

    out = tmp_path_factory.mktemp("sprites")
    n, per_shard, size = 300, 100, 16
    records = []
    for shard in range(n // per_shard):
        name = f"sprites-{shard:06d}.tar"
        with tarfile.open(out / name, "w") as tar:
            for i in range(shard * per_shard, (shard + 1) * per_shard):
                labels = _sprite_labels(i)
                pixels = np.zeros((size, size, 3), dtype=np.uint8)
                x, y = (int(v * (size - 4)) for v in labels["position"])
                pixels[y:y + 4, x:x + 4] = [int(255 * c) for c in labels["style"]["color"]]
                for ext, data in (("png", encode_png(pixels)), ("json", encode_json(labels))):
                    info = tarfile.TarInfo(f"{i:09d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        records.append({"name": name, "count": per_shard, "first_index": shard * per_shard,
                        "bytes": (out / name).stat().st_size, "sha256": file_sha256(out / name)})
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "generator": "hand-built test set",
                "generator_version": "0", "name": "sprites", "count": n, "image_size": size, "params": {},
                "command": "built by tests/test_datasets_factors.py", "summary": "dSprites-style sprites",
                "members": {"png": "8-bit RGB image", "json": "the sprite's factors"},
                "shards": records, "factors": SPRITE_FACTORS}
    assert manifest_problems(manifest) == []
    write_manifest(out, manifest, "# sprites\n")
    return out


def _truth(labels: dict) -> list[float]:
    return [labels["shape"], labels["scale"], labels["orientation"], *labels["position"], *labels["style"]["color"]]


def test_a_dsprites_style_set_streams_its_factors(sprite_set):
    ds = latentds.load_shards(sprite_set, batch_size=50, shuffle=64, seed=2)
    assert [r["name"] for r in ds.factor_table] == SPRITE_NAMES
    assert ds.factor_table[3]["path"] == "position[0]" and ds.factor_table[5]["type"] == "float"
    for stream in (ds, pickle.loads(pickle.dumps(ds))):  # as a DataLoader worker started by spawn gets it
        batches = list(stream)
        assert len(batches) == 6
        for b in batches:
            assert b["factors"].shape == b["factor_mask"].shape == (50, 8) and b["factor_mask"].all()
            expected = torch.tensor([_truth(lab) for lab in b["labels"]], dtype=torch.float32)
            assert torch.equal(b["factors"], expected)


@pytest.mark.slow
def test_its_factors_score_as_they_should(sprite_set):
    from latentds.analysis.disentanglement import scores

    batches = list(latentds.load_shards(sprite_set, batch_size=100))
    factors = torch.cat([b["factors"] for b in batches]).numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    standard = (factors - factors.mean(0)) / factors.std(0)
    latents = standard[:, rng.permutation(8)] + 0.05 * rng.normal(size=standard.shape)  # factors plus noise
    result = scores(latents, factors, mode="fast", n_jobs=1)
    assert result["settings"]["discrete_factors"] == [True] + [False] * 7  # shape: 3 values; the rest binned
    assert result["settings"]["skipped_factors"] == []
    assert result["mig"] > 0.45  # 0.60 here (300 points in 20 bins); a random rotation of these latents: 0.02


@pytest.mark.parametrize("recipe,sets", [("zoo/e2e_cnn", ["model.image_size=16", "model.width=8"]),
                                         ("zoo/vae_disc", ["model.image_size=16", "model.width=8",
                                                           "model.triplet_weight=1.0"])])
def test_models_that_read_factors_refuse_data_that_lacks_them(sprite_set, tmp_path, recipe, sets):
    """e2e_cnn's targets and vae_disc's triplet factor are bound to the data's columns by name; a set that lacks
    them (here a dSprites-style set, with the cuboid defaults) is refused before training, nothing written."""
    from click.testing import CliRunner

    from latentds.cli import main

    out = tmp_path / "run"
    args = ["train", recipe, "--data", str(sprite_set), "--out", str(out), "--max-steps", "1"]
    for s in sets + ["data.num_workers=0"]:
        args += ["--set", s]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    message = result.output.strip().splitlines()
    assert len(message) == 1 and "of the data" in message[0] and "shape, scale, orientation" in message[0]
    assert "--set model." in message[0]  # what to do
    assert not out.exists()


@pytest.mark.slow
def test_the_triplet_factor_is_bound_to_the_data_by_name(sprite_set, tmp_path):
    """vae_disc's triplet loss on a factor of a non-cuboid set: the column is the data's own, and it trains."""
    from latentds.datasets.shards import load_shards
    from latentds.zoo.base import create
    from latentds.zoo.recipe import load_recipe
    from latentds.zoo.trainer import _check_readable, train

    names = [row["name"] for row in load_shards(sprite_set).factor_table]
    recipe = load_recipe("zoo/vae_disc", [
        f'data.shards="{sprite_set}"', "model.image_size=16", "model.width=8", "model.triplet_weight=1.0",
        'model.triplet_factor="scale"', "data.num_workers=0", "train.max_steps=2", "train.batch_size=8"])
    model = create("vae_disc", **recipe.model)
    assert model.triplet_column is None  # unbound until the data is known
    _check_readable(recipe, model)
    assert model.triplet_column == names.index("scale") != 0
    run = train(recipe, tmp_path / "run", progress=False)
    assert (run / "model.safetensors").exists()
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(math.isfinite(row.get("vae/triplet", math.nan)) for row in logged)


def test_factors_come_only_from_the_sets_table_and_a_model_reading_them_needs_one(phi_set, tmp_path):
    """A pipe: URL has no manifest beside it, so no factor table: a cuboid render's samples streamed that way carry
    no factor vector (nothing is guessed from their labels), and train refuses, in one line and before writing
    anything, a model that reads factors; streamed from its directory, the same model binds to the set's table."""
    from click.testing import CliRunner

    from latentds.cli import main
    from latentds.datasets.cuboids import FACTOR_NAMES
    from latentds.errors import InvalidParameterError
    from latentds.zoo.base import create
    from latentds.zoo.recipe import load_recipe
    from latentds.zoo.trainer import _check_readable

    _, directory = phi_set
    shard = sorted(directory.glob("*.tar"))[0]
    url = f"pipe:cat {shard}"
    streamed = list(latentds.load_shards(url))
    assert streamed and not any("factors" in s or "factor_mask" in s for s in streamed)
    assert all("labels" in s and "joints" in s["labels"] for s in streamed)  # the labels are still there
    assert "factors" in next(iter(latentds.load_shards(directory)))
    for shards, refused in ((url, True), (directory, False)):
        recipe = load_recipe("zoo/e2e_cnn", [f'data.shards="{shards}"', "model.image_size=16", "model.width=4",
                                             "model.latent_dim=8", 'model.targets=["phi_0"]'])
        model = create("e2e_cnn", **recipe.model)
        assert model.factors_read == {"phi_0": None}
        if refused:
            with pytest.raises(InvalidParameterError, match="reads factor 'phi_0'.*has no factor table") as error:
                _check_readable(recipe, model)
            assert len(str(error.value).splitlines()) == 1 and model.factors_read == {"phi_0": None}
        else:
            _check_readable(recipe, model)
            assert model.factors_read == {"phi_0": FACTOR_NAMES.index("phi_0")}
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "zoo/e2e_cnn", "--data", url, "--out", str(out), "--set",
                                       "model.image_size=16", "--set", "data.num_workers=0"])
    assert result.exit_code == 2 and "has no factor table" in result.output, result.output
    assert not out.exists()


def test_a_malformed_factor_row_is_a_one_line_shard_error(phi_set, tmp_path):
    import shutil

    _, directory = phi_set
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["factors"][0]["type"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="needs a name and a type") as caught:
        list(latentds.load_shards(copy))
    assert "\n" not in str(caught.value)
