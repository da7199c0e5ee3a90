"""The zoo: every registered family, saving/loading, recipes, the trainer, resume, the CLI."""

import json
import socket
import time
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

import latentds
from latentds.cli import main
from latentds.errors import InvalidParameterError
from latentds.render import RenderSpec, render_shards
from latentds.zoo.base import HubError, LatentModel, ModelConfig, create, families, load_pretrained
from latentds.zoo.recipe import load_recipe, recipe_from_dict
from latentds.zoo.trainer import train

TINY = {"image_size": 16, "width": 8, "latent_dim": 4}


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    render_shards(RenderSpec("varied", n=96, size=16, shard_size=32, seed=3), out, workers=1, progress=False)
    return out


def tiny_recipe(name, shards, **train):
    sets = [f"model.{k}={v}" for k, v in TINY.items()] + [f'data.shards="{shards}"', "data.num_workers=0",
                                                         "train.batch_size=8", "train.warmup_steps=0",
                                                         "train.log_every=2", "train.checkpoint_every=2"]
    recipe = load_recipe(f"zoo/{name}", sets)
    return replace(recipe, train=replace(recipe.train, **train))


@pytest.mark.parametrize("family", families())
def test_every_family_encodes_decodes_samples_and_has_a_finite_loss(family):
    torch.manual_seed(0)
    model = create(family, **TINY)
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    z = model.encode(x)
    assert z.shape == (5, model.config.latent_dim)
    assert model.decode(z).shape == x.shape and model.sample(3).shape == (3, 3, 16, 16)
    assert model.decode(z).abs().max() <= 1
    terms = model.loss(x)
    assert torch.isfinite(terms["loss"]) and terms["loss"].requires_grad
    assert set(model.parameter_groups()) and all(model.parameter_groups().values())


@pytest.mark.parametrize("family", families())
def test_save_then_load_is_exact_and_never_pickles(family, tmp_path):
    model = create(family, **TINY)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = latentds.from_pretrained(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert f"`{family}`" in (tmp_path / "README.md").read_text()
    # a directory with pickled weights only is refused, not unpickled
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(InvalidParameterError, match="holds no model.safetensors"):
        load_pretrained(tmp_path)


def test_config_keys_are_checked_on_load(tmp_path):
    create("vae", **TINY).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "latent_dims": 8}))
    with pytest.raises(InvalidParameterError, match="unknown key 'latent_dims'.*valid keys: beta"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "beta": "high"}))
    with pytest.raises(InvalidParameterError, match="beta must be float"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "latent_dim": 5}))
    with pytest.raises(InvalidParameterError, match="does not fit vae"):
        load_pretrained(tmp_path)


def test_an_unreachable_hub_fails_fast_with_advice(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    start = time.perf_counter()
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        latentds.from_pretrained("latentds-test/not-cached-anywhere")
    assert time.perf_counter() - start < 10


def test_recipes_are_strict_and_keep_tuples(tiny_shards):
    recipe = load_recipe("zoo/beta_vae", ["train.betas=[0.5, 0.9]"])
    assert recipe.model["beta"] == 4.0 and recipe.model["latent_dim"] == 32 and recipe.train.betas == (0.5, 0.9)
    import tomllib

    again = recipe_from_dict("beta_vae", tomllib.loads(recipe.to_toml()))
    assert again == recipe and isinstance(again.train.betas, tuple)
    with pytest.raises(InvalidParameterError, match="unknown key 'lrate'.*valid keys: batch_size"):
        load_recipe("zoo/vae", ["train.lrate=0.1"])
    with pytest.raises(InvalidParameterError, match=r"\[train\].epochs must be int"):
        load_recipe("zoo/vae", ["train.epochs=1.5"])
    with pytest.raises(InvalidParameterError, match="no model.family"):
        recipe_from_dict("x", {"model": {"latent_dim": 3}})


def _first_and_last(run):
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    return rows[0], rows[-1]


@pytest.mark.parametrize("family", ["vae", "beta_vae"])
def test_a_few_steps_of_training_lower_the_loss_and_leave_a_loadable_run(family, tiny_shards, tmp_path):
    run = train(tiny_recipe(family, tiny_shards, epochs=3, lr=3e-3), tmp_path / "run", progress=False)
    first, last = _first_and_last(run)
    assert last["step"] == 36 and last["loss"] < 0.8 * first["loss"]
    assert {"recon", "kl", "lr", "images_per_s"} <= set(last)
    figures = {p.name for p in (run / "figures").iterdir()}
    assert {"loss.png", "epoch-003-recon.png", "epoch-003-samples.png"} <= figures
    model = latentds.from_pretrained(run)
    assert model.family == family and "## Recipe" in (run / "README.md").read_text()


def test_resume_continues_as_if_never_stopped(tiny_shards, tmp_path):
    whole = train(tiny_recipe("vae", tiny_shards, epochs=2, max_steps=16), tmp_path / "whole", progress=False)
    part = train(tiny_recipe("vae", tiny_shards, epochs=2, max_steps=5), tmp_path / "part", progress=False)
    train(tiny_recipe("vae", tiny_shards, epochs=2, max_steps=16), part, resume=True, progress=False)
    a, b = latentds.from_pretrained(whole).state_dict(), latentds.from_pretrained(part).state_dict()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    assert _first_and_last(whole)[1]["step"] == _first_and_last(part)[1]["step"] == 16


class _TwoGroups(LatentModel, family="test_two_groups"):
    """A family with two optimisers, updated on different steps: the trainer must drive both."""

    Config = ModelConfig

    def __init__(self, config=None):
        super().__init__(config)
        self.a = torch.nn.Parameter(torch.zeros(1))
        self.b = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def decode(self, z):
        return torch.zeros(z.shape[0], 3, self.config.image_size, self.config.image_size)

    def parameter_groups(self):
        return {"first": [self.a], "second": [self.b]}

    def updates(self, group, step):
        return group == "first" or step % 2 == 0

    def loss(self, x, group="model"):
        self.calls.append(group)
        p = self.a if group == "first" else self.b
        return {"loss": (p - 1).pow(2).sum()}


def test_the_trainer_drives_every_optimiser_group(tiny_shards, tmp_path, monkeypatch):
    recipe = recipe_from_dict("two", {"model": {"family": "test_two_groups", "image_size": 16, "latent_dim": 2},
                                      "data": {"shards": str(tiny_shards), "num_workers": 0},
                                      "train": {"max_steps": 6, "batch_size": 8, "lr": 0.1, "schedule": "constant",
                                                "sample_every_epoch": False, "log_every": 1}})
    created = []
    real_create = create

    def spy(name, **kw):
        created.append(real_create(name, **kw))
        return created[-1]

    monkeypatch.setattr("latentds.zoo.trainer.create", spy)
    train(recipe, tmp_path / "run", progress=False)
    model = created[0]
    assert model.calls == ["first", "second", "first", "first", "second", "first", "first", "second", "first"]
    assert model.a.item() > model.b.item() > 0  # both moved towards 1; "first" took twice the steps
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert "first/loss" in rows[0] and "second/loss" in rows[0]


def test_cli_zoo_train_sample_and_errors(tiny_shards, tmp_path):
    runner = CliRunner()
    listing = runner.invoke(main, ["zoo"])
    assert listing.exit_code == 0 and "zoo/vae" in listing.stdout and "zoo/beta_vae" in listing.stdout
    args = ["train", "zoo/vae", "--data", str(tiny_shards), "--out", str(tmp_path / "run"), "--quiet",
            "--max-steps", "3", "--batch-size", "8"] + [x for k, v in TINY.items() for x in ("--set", f"model.{k}={v}")]
    result = runner.invoke(main, args + ["--set", "data.num_workers=0"])
    assert result.exit_code == 0, result.output
    sampled = runner.invoke(main, ["sample", str(tmp_path / "run"), "--n", "9", "--out", str(tmp_path / "g.png")])
    assert sampled.exit_code == 0 and (tmp_path / "g.png").stat().st_size > 100
    for extra, message in [(["--set", "train.lrate=1"], "unknown key 'lrate'"),
                           (["--set", "model.latent_dim=x"], "latent_dim must be int"),
                           (["--set", "data.num_workers=0"], "already holds a training run")]:
        bad = runner.invoke(main, args + extra)
        assert bad.exit_code == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    nodata = runner.invoke(main, ["train", "zoo/vae", "--out", str(tmp_path / "r2")])
    assert nodata.exit_code == 2 and "no training data" in nodata.stderr
    missing = runner.invoke(main, ["train", "zoo/vae", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r3")])
    assert missing.exit_code == 2 and "nope" in missing.stderr


def test_ddp_under_torchrun_splits_each_epoch_between_ranks(tiny_shards, tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "latentds.cli", "train",
           "zoo/vae", "--data", str(tiny_shards), "--out", str(out), "--batch-size", "8", "--epochs", "2", "--quiet",
           "--set", "data.num_workers=0"] + [x for k, v in TINY.items() for x in ("--set", f"model.{k}={v}")]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("trained vae") == 1  # rank 0 alone reports and writes
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert rows[-1]["step"] == 12  # 96 images / 2 ranks / batch 8 = 6 steps per epoch
    assert latentds.from_pretrained(out).family == "vae"


def test_a_hub_id_loads_from_the_local_cache_offline(tmp_path, monkeypatch):
    """The Hub path for real, minus the network: a repo already in the cache (its real layout) loads offline."""
    import huggingface_hub.constants as hf

    model = create("beta_vae", **TINY)
    snapshot = tmp_path / "models--latentds-test--tiny-bvae" / "snapshots" / ("0" * 40)
    model.save_pretrained(snapshot)
    (tmp_path / "models--latentds-test--tiny-bvae" / "refs").mkdir()
    (tmp_path / "models--latentds-test--tiny-bvae" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    loaded = latentds.from_pretrained("latentds-test/tiny-bvae")
    assert loaded.family == "beta_vae" and torch.equal(loaded.decoder.project[0].weight,
                                                       model.decoder.project[0].weight)
    with pytest.raises(HubError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
        latentds.from_pretrained("latentds-test/absent")


def test_push_says_what_is_missing(tmp_path, monkeypatch):
    create("vae", **TINY).save_pretrained(tmp_path / "m")
    runner = CliRunner()
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    result = runner.invoke(main, ["push", str(tmp_path / "m"), "--repo", "org/name"])
    assert result.exit_code == 2 and "no Hugging Face token" in result.stderr
    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_fake")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError(101, "down")))
    result = runner.invoke(main, ["push", str(tmp_path / "m"), "--repo", "org/name"])
    assert result.exit_code == 2 and "cannot reach the Hugging Face Hub" in result.stderr
    (tmp_path / "empty").mkdir()
    result = runner.invoke(main, ["push", str(tmp_path / "empty"), "--repo", "org/name"])
    assert result.exit_code == 2 and "nothing to push" in result.stderr
