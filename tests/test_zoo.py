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
from latentds.zoo.base import HubError, LatentModel, ModelConfig, create, families, load_pretrained
from latentds.zoo.capabilities import Capabilities
from latentds.zoo.recipe import load_recipe, recipe_from_dict
from latentds.zoo.trainer import train
from tiny import TINY

# Every registered family needs a tiny configuration in tiny.py (a new family without one fails
# test_every_family_has_a_tiny_configuration), and here the loss term that must fall in a few steps of training.
FALLING = {"vae": ("loss", 0.8), "beta_vae": ("loss", 0.8), "vae_disc": ("vae/recon", 0.8),
           "cycle_vae": ("autoencoder/recon", 0.8), "clamped_vae": ("recon", 0.8),
           # a GAN's losses fight: its discriminator learns to beat chance (the study's network, without batch norm;
           # with it the game stays balanced near ln 2 and neither loss need fall in 36 steps)
           "dcgan": ("discriminator/loss", 0.9, {"batch_norm": False}),
           "e2e_cnn": ("mse", 0.9)}
FAMILIES = families()


@pytest.fixture(scope="module")
def tiny_shards(varied96):
    """The session's tiny varied render (conftest.py)."""
    return varied96


@pytest.fixture(scope="module")
def tiny_data(varied96, varied96_identities, varied96_sequences):
    """A shard set per batch kind: plain, pairs (identities) and groups (two swept factors, 4 steps)."""
    return {"plain": varied96, "pairs": varied96_identities, "groups": varied96_sequences}


def tiny_recipe(name, shards, model=None, **train):
    family = load_recipe(f"zoo/{name}").model["family"]
    sets = [f"model.{k}={json.dumps(v)}" for k, v in {**TINY[family], **(model or {})}.items()]
    sets += [f'data.shards="{shards}"', "data.num_workers=0", "train.batch_size=8", "train.warmup_steps=0",
             "train.log_every=2", "train.checkpoint_every=2"]
    recipe = load_recipe(f"zoo/{name}", sets)
    return replace(recipe, train=replace(recipe.train, **train))


def data_for(family, tiny_data):
    return tiny_data[create(family, **TINY[family]).capabilities.batches]


def test_every_family_has_a_tiny_configuration_and_a_recipe():
    assert set(TINY) == set(FAMILIES) == set(FALLING)
    from latentds.zoo.recipe import recipe_names

    assert set(FAMILIES) <= set(recipe_names())
    assert {"vae", "beta_vae", "vae_disc", "cycle_vae", "clamped_vae", "dcgan", "e2e_cnn"} <= set(FAMILIES)


def _batch(model, n=8):
    from latentds.datasets.cuboids import FACTOR_NAMES

    x = torch.rand(n, 3, 16, 16) * 2 - 1
    labels = [{"sequence": {"factor": "phi_0" if i < n // 2 else "theta_0"}} for i in range(n)]
    group = torch.arange(n) // 2 if model.capabilities.batches == "pairs" else torch.arange(n) // (n // 2)
    factors = torch.rand(n, len(FACTOR_NAMES)) * 90  # as a cuboid shard set's batches carry them
    model.bind_factors(list(FACTOR_NAMES))  # to that set's table, as train binds every model
    return {"image": x, "labels": labels, "group": group, "factors": factors,
            "factor_mask": torch.rand(n, len(FACTOR_NAMES)) < 0.8}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_decodes_samples_and_has_finite_losses_for_every_group(family):
    torch.manual_seed(0)
    model = create(family, **TINY[family])
    batch = _batch(model)
    x = batch["image"]
    z = model.prior(5)
    assert z.shape == (5, model.config.latent_dim)
    if model.capabilities.decoder:
        assert model.decode(z).shape == (5, 3, 16, 16) and model.sample(3).shape == (3, 3, 16, 16)
        assert model.decode(z).abs().max() <= 1
    else:
        for attempt in (lambda: model.decode(z), lambda: model.sample(3), lambda: model.reconstruct(x)):
            with pytest.raises(InvalidParameterError, match=f"{family} has no decoder"):
                attempt()
    if model.capabilities.encoder:
        assert model.encode(x).shape == (8, model.config.latent_dim)
    else:
        with pytest.raises(InvalidParameterError, match="no encoder"):
            model.encode(x)
    if model.capabilities.posterior:
        mu, logvar = model.posterior(x)
        assert torch.equal(mu, model.encode(x)) and logvar.shape == mu.shape
    if model.capabilities.partitioned:
        parts = model.partition()
        assert parts["s"].stop == parts["z"].start and parts["z"].stop == model.config.latent_dim
    groups = model.parameter_groups()
    terms = model.losses(batch, step=0)
    assert set(terms) == set(groups) and all(groups.values())
    for group, group_terms in terms.items():
        assert torch.isfinite(group_terms["loss"]) and group_terms["loss"].requires_grad, group
    assert model.choose_updates({g: {k: v.item() for k, v in t.items()} for g, t in terms.items()}, 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_then_load_is_exact_and_never_pickles(family, tmp_path):
    model = create(family, **TINY[family])
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


def test_a_second_family_with_a_taken_name_is_refused():
    with pytest.raises(TypeError, match="'vae' is already registered"):
        class Copy(LatentModel, family="vae"):  # noqa: F841
            pass
    assert create("vae", **TINY["vae"]).family == "vae"


def test_config_keys_are_checked_on_load(tmp_path):
    create("vae", **TINY["vae"]).save_pretrained(tmp_path)
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


def _rows(run):
    return [json.loads(line) for line in open(run / "metrics.jsonl")]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_a_few_steps_of_training_lower_the_loss_and_leave_a_loadable_run(family, tiny_data, tmp_path):
    term, ratio, *overrides = FALLING[family]
    run = train(tiny_recipe(family, data_for(family, tiny_data), model=overrides[0] if overrides else None, epochs=3,
                            lr=3e-3), tmp_path / "run", progress=False)
    rows = _rows(run)
    first, last = rows[0], rows[-1]
    assert last["step"] == 36 and last[term] < ratio * first[term], (first[term], last[term])
    model = latentds.from_pretrained(run)
    groups = list(model.parameter_groups())
    if len(groups) > 1:  # how often each group stepped, per logging window
        assert all(0 <= last[f"updates/{g}"] <= 1 for g in groups) and {f"lr/{g}" for g in groups} <= set(last)
    figures = {p.name for p in (run / "figures").iterdir()}
    assert "loss.png" in figures and ("epoch-003-samples.png" in figures) == model.capabilities.decoder
    assert ("epoch-003-recon.png" in figures) == (model.capabilities.encoder and model.capabilities.decoder)
    assert model.family == family and "## Recipe" in (run / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_resume_continues_as_if_never_stopped(family, tiny_data, tmp_path):
    data = data_for(family, tiny_data)
    whole = train(tiny_recipe(family, data, epochs=2, max_steps=16), tmp_path / "whole", progress=False)
    part = train(tiny_recipe(family, data, epochs=2, max_steps=5), tmp_path / "part", progress=False)
    train(tiny_recipe(family, data, epochs=2, max_steps=16), part, resume=True, progress=False)
    a, b = latentds.from_pretrained(whole).state_dict(), latentds.from_pretrained(part).state_dict()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    assert _rows(whole)[-1]["step"] == _rows(part)[-1]["step"] == 16


@pytest.fixture
def scripted_family():
    """A two-group family whose choices follow a script; removed from the registry afterwards."""
    from latentds.zoo.base import REGISTRY

    with REGISTRY.scope():  # the family leaves the registry afterwards
        class Scripted(LatentModel, family="test_scripted"):
            Config = ModelConfig
            capabilities = Capabilities(groups=("first", "second"), group_defaults={"second": {"lr": 0.05}})

            def __init__(self, config=None):
                super().__init__(config)
                self.a = torch.nn.Parameter(torch.zeros(1))
                self.b = torch.nn.Parameter(torch.zeros(1))
                self.shared = torch.nn.Parameter(torch.zeros(1))  # in neither group: never moves
                self.seen = []

            def decode(self, z):
                return torch.zeros(z.shape[0], 3, self.config.image_size, self.config.image_size)

            def parameter_groups(self):
                return {"first": [self.a], "second": [self.b]}

            def losses(self, batch, step=0):
                # both groups' losses touch `shared` and the other group's parameter: only the group's own may move
                return {group: {"loss": (p - 1).pow(2).sum() + (self.a * self.b * self.shared).sum()
                                + 0 * self.shared.sum()} for group, p in (("first", self.a), ("second", self.b))}

            def choose_updates(self, values, step):
                self.seen.append((step, sorted(values)))
                return ["first"] if step % 3 else ["first", "second"]

        yield Scripted


def test_the_trainer_steps_exactly_the_groups_the_model_chooses(scripted_family, tiny_shards, tmp_path, monkeypatch):
    recipe = recipe_from_dict("s", {"model": {"family": "test_scripted", "image_size": 16, "latent_dim": 2},
                                    "data": {"shards": str(tiny_shards), "num_workers": 0},
                                    "train": {"max_steps": 6, "batch_size": 8, "lr": 0.1, "schedule": "constant",
                                              "sample_every_epoch": False, "log_every": 3,
                                              "groups": {"first": {"optimizer": "adamw"}}}})
    created = []
    real_create = create
    monkeypatch.setattr("latentds.zoo.trainer.create", lambda name, **kw: created.append(real_create(name, **kw))
                        or created[-1])
    train(recipe, tmp_path / "run", progress=False)
    model = created[0]
    assert [step for step, _ in model.seen] == list(range(6)) and model.seen[0][1] == ["first", "second"]
    assert model.shared.item() == 0.0
    # "second" stepped at steps 0 and 3 only, with the family's lr 0.05; "first" every step with AdamW at 0.1
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert checkpoint["optimizers"]["second"]["state"][0]["step"] == 2
    assert checkpoint["optimizers"]["first"]["state"][0]["step"] == 6
    assert checkpoint["optimizers"]["second"]["param_groups"][0]["lr"] == 0.05
    assert "decoupled_weight_decay" in checkpoint["optimizers"]["first"]["param_groups"][0] or \
        checkpoint["optimizers"]["first"]["param_groups"][0]["weight_decay"] == 0.0
    assert 0.05 * 2 * 0.9 < model.b.item() <= 0.05 * 2 + 1e-6 < model.a.item()
    rows = _rows(tmp_path / "run")
    assert [r["updates/second"] for r in rows] == [1 / 3, 1 / 3] and [r["updates/first"] for r in rows] == [1, 1]
    with pytest.raises(InvalidParameterError, match="no parameter group 'third'; its groups: first, second"):
        recipe_from_dict("s", {"model": {"family": "test_scripted"}, "train": {"groups": {"third": {"lr": 1.0}}}})


STRATEGY_CASES = [  # (strategy, adversarial, discriminator loss, discriminator accuracy) -> groups
    ("both", 5.0, 0.1, 0.99, ["vae", "discriminator"]),
    ("inferior", 2.0, 0.5, 0.5, ["vae"]),            # the generator's loss is higher: the VAE is behind
    ("inferior", 0.3, 0.9, 0.5, ["discriminator"]),  # the discriminator is behind
    ("accuracy_threshold", 0.3, 0.9, 0.5, ["vae", "discriminator"]),
    ("accuracy_threshold", 0.3, 0.9, 0.95, ["vae"]),
]


@pytest.mark.parametrize("strategy,g,d,accuracy,expected", STRATEGY_CASES)
def test_each_update_strategy_chooses_the_groups_it_should(strategy, g, d, accuracy, expected):
    model = create("vae_disc", **TINY["vae_disc"], update_strategy=strategy, accuracy_threshold=0.9)
    values = {"vae": {"loss": 10.0, "adversarial": g}, "discriminator": {"loss": d, "accuracy": accuracy}}
    assert model.choose_updates(values, step=7) == expected


def test_probabilistic_inferior_follows_how_far_behind_each_is():
    model = create("vae_disc", **TINY["vae_disc"], update_strategy="probabilistic_inferior")
    values = {"vae": {"adversarial": 3.0}, "discriminator": {"loss": 1.0, "accuracy": 0.5}}
    picks = [model.choose_updates(values, step) for step in range(2000)]
    assert all(p in (["vae"], ["discriminator"]) for p in picks)
    share = sum(p == ["vae"] for p in picks) / len(picks)
    assert 0.71 < share < 0.79  # 3 / (3 + 1)
    assert picks == [model.choose_updates(values, step) for step in range(2000)]  # the same on every rank and rerun


def test_the_triplet_loss_pulls_latents_together_by_the_chosen_factor():
    model = create("vae_disc", **TINY["vae_disc"], triplet_weight=1.0, triplet_factor="phi_0", triplet_margin=0.5)
    from latentds.datasets.cuboids import FACTOR_NAMES

    n = 32
    factors = torch.zeros(n, len(FACTOR_NAMES))
    phi = torch.linspace(-100, 100, n)
    factors[:, FACTOR_NAMES.index("phi_0")] = phi
    batch = {"factors": factors, "factor_mask": torch.ones(n, len(FACTOR_NAMES), dtype=torch.bool)}
    assert model.triplet_column is None and model.factors_read == {"phi_0": None}  # unbound, even for a cuboid name
    with pytest.raises(InvalidParameterError, match="not bound"):
        model.triplet_loss(torch.zeros(n, 4), batch)
    model.bind_factors(list(FACTOR_NAMES))  # the columns of a cuboid render's table
    assert model.factors_read == {"phi_0": FACTOR_NAMES.index("phi_0")}
    torch.manual_seed(0)
    ordered = model.triplet_loss(phi[:, None] / 100 * torch.ones(n, 4), batch)  # latents laid out by phi
    torch.manual_seed(0)
    scrambled = model.triplet_loss(phi[torch.randperm(n)][:, None] / 100 * torch.ones(n, 4), batch)
    assert ordered < 0.5 * scrambled
    # the column comes from the data's factor names (train binds them); a factor the data lacks is refused
    names = ["size", *FACTOR_NAMES]
    model.bind_factors(names)
    assert model.triplet_column == names.index("phi_0") == FACTOR_NAMES.index("phi_0") + 1
    nope = create("vae_disc", **TINY["vae_disc"], triplet_weight=1.0, triplet_factor="nope")
    with pytest.raises(InvalidParameterError, match="'nope' is not a factor of the data"):
        nope.bind_factors(FACTOR_NAMES)
    unbound = create("vae_disc", **TINY["vae_disc"], triplet_weight=1.0, triplet_factor="age")
    with pytest.raises(InvalidParameterError, match="not bound"):
        unbound.triplet_loss(torch.zeros(n, 4), batch)


def test_cycle_vae_reconstructs_each_image_from_its_partners_s_and_its_own_z():
    model = create("cycle_vae", **TINY["cycle_vae"]).eval()
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    seen = []
    model.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    torch.manual_seed(0)
    model.losses({"image": x, "group": torch.arange(6) // 2})
    s, mu, logvar = model.split(x)
    swapped = seen[0]  # the forward cycle's decoder input
    parts = model.partition()
    assert torch.allclose(swapped[:, parts["s"]], s[[1, 0, 3, 2, 5, 4]])  # the partner's s
    torch.manual_seed(0)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    assert torch.allclose(swapped[:, parts["z"]], z)  # the image's own z sample
    reverse_a, reverse_b = seen[1], seen[2]  # one prior z decoded with two pairs' s
    assert torch.equal(reverse_a[:, parts["z"]], reverse_b[:, parts["z"]])
    assert torch.allclose(reverse_a[:, parts["s"]], s[0::2]) and torch.allclose(reverse_b[:, parts["s"]],
                                                                              s[0::2].roll(1, 0))
    # the reverse cycle steps the encoder only
    assert {id(p) for p in model.parameter_groups()["reverse_cycle"]} == {id(p) for p in model.encoder.parameters()}


def test_cycle_vae_batch_norm_running_stats_are_the_data_passes_alone():
    # the reverse cycle decodes prior codes and re-encodes drawn images: their statistics must not reach the running
    # statistics eval mode uses (mixed in, eval-mode reconstructions drifted from training mode's, ever further)
    model = create("cycle_vae", **TINY["cycle_vae"]).train()
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    reference = create("cycle_vae", **TINY["cycle_vae"]).train()
    reference.load_state_dict(model.state_dict())
    torch.manual_seed(0)
    model.losses({"image": x, "group": torch.arange(8) // 2})
    torch.manual_seed(0)  # the forward cycle alone, with the same noise: the data's passes
    s, mu, logvar = reference.split(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    reference.decoder(torch.cat([s[[1, 0, 3, 2, 5, 4, 7, 6]], z], 1))
    buffers = dict(reference.named_buffers())
    norms = [name for name in buffers if "running_" in name or "num_batches" in name]
    assert norms and all(torch.equal(buffer, buffers[name]) for name, buffer in model.named_buffers() if name in norms)


def test_running_stats_frozen_normalises_by_the_batch_and_keeps_the_running_stats():
    from latentds.zoo.nets import running_stats_frozen
    norm = torch.nn.BatchNorm2d(3).train()
    x = torch.randn(4, 3, 5, 5) * 3 + 2
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    with running_stats_frozen(norm):
        out = norm(x)
    assert all(torch.equal(v, before[k]) for k, v in norm.state_dict().items())
    assert norm.momentum == 0.1
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)  # the batch's statistics
    norm(x)
    assert not torch.equal(norm.running_mean, before["running_mean"])  # outside the block, updated as usual

def test_clamped_units_equal_the_group_mean_and_only_the_varying_factor_moves():
    model = create("clamped_vae", **TINY["clamped_vae"])  # phi_0 -> units 0-1, theta_0 -> 2-3, free 4-5
    z = torch.randn(8, 6)
    group = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    clamped, mask = model.clamp(z, group, ["theta_0", "light_azimuth"])
    for g, free in ((0, [2, 3]), (1, [])):
        rows = group == g
        for unit in range(6):
            column = clamped[rows, unit]
            if unit in free:
                assert torch.equal(column, z[rows, unit])
            else:
                assert torch.allclose(column, z[rows, unit].mean().expand(4))
    assert mask.sum() == 8 * 6 - 4 * 2
    torch.manual_seed(0)
    batch = {"image": torch.rand(8, 3, 16, 16) * 2 - 1, "group": group,
             "labels": [{"sequence": {"factor": "theta_0"}}] * 4 + [{"sequence": {"factor": "light_azimuth"}}] * 4}
    assert model.losses(batch)["model"]["clamp"] > 0


@pytest.mark.slow
def test_cli_zoo_train_sample_and_errors(tiny_shards, tmp_path):
    runner = CliRunner()
    listing = runner.invoke(main, ["zoo"])
    assert listing.exit_code == 0 and "zoo/vae" in listing.stdout and "zoo/beta_vae" in listing.stdout
    args = ["train", "zoo/vae", "--data", str(tiny_shards), "--out", str(tmp_path / "run"), "--quiet",
            "--max-steps", "3", "--batch-size", "8"] + [x for k, v in TINY["vae"].items() for x in ("--set", f"model.{k}={v}")]
    result = runner.invoke(main, args + ["--set", "data.num_workers=0"])
    assert result.exit_code == 0, result.output
    sampled = runner.invoke(main, ["sample", str(tmp_path / "run"), "--n", "9", "--out", str(tmp_path / "g.png")])
    assert sampled.exit_code == 0 and (tmp_path / "g.png").stat().st_size > 100
    for extra, message in [(["--set", "train.lrate=1"], "unknown train setting 'lrate'"),
                           (["--set", "model.latent_dim=x"], "latent_dim must be int"),
                           (["--set", "data.num_workers=0"], "already holds a training run")]:
        bad = runner.invoke(main, args + extra)
        assert bad.exit_code == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    nodata = runner.invoke(main, ["train", "zoo/vae", "--out", str(tmp_path / "r2")])
    assert nodata.exit_code == 2 and "no training data" in nodata.stderr
    missing = runner.invoke(main, ["train", "zoo/vae", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r3")])
    assert missing.exit_code == 2 and "nope" in missing.stderr


@pytest.mark.slow
@pytest.mark.parametrize("family,extra", [(f, ["--set", 'model.update_strategy="inferior"'] if f == "vae_disc" else [])
                                          for f in FAMILIES])
def test_ddp_under_torchrun_splits_each_epoch_between_ranks(family, extra, tiny_data, tmp_path):
    """Two gloo ranks on CPU; the multi-group families choose per step and leave parameters out of some passes."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "latentds.cli", "train",
           f"zoo/{family}", "--data", str(data_for(family, tiny_data)), "--out", str(out), "--batch-size", "8",
           "--epochs", "2", "--quiet", "--set", "data.num_workers=0", "--set", "train.log_every=2"] + extra
    cmd += [x for k, v in TINY[family].items() for x in ("--set", f"model.{k}={json.dumps(v)}")]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count(f"trained {family}") == 1  # rank 0 alone reports and writes
    rows = _rows(out)
    assert rows[-1]["step"] == 12  # 96 images / 2 ranks / batch 8 = 6 steps per epoch
    if family == "vae_disc":  # the ranks agreed on every choice (else the gradient all-reduces would hang)
        assert all(r["updates/vae"] + r["updates/discriminator"] == 1 for r in rows)
    assert latentds.from_pretrained(out).family == family


def test_a_hub_id_loads_from_the_local_cache_offline(tmp_path, monkeypatch):
    """The Hub path for real, minus the network: a repo already in the cache (its real layout) loads offline."""
    import huggingface_hub.constants as hf

    model = create("beta_vae", **TINY["beta_vae"])
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
    create("vae", **TINY["vae"]).save_pretrained(tmp_path / "m")
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


@pytest.mark.parametrize("family", FAMILIES)
def test_latentds_sample_draws_from_every_family(family, tmp_path):
    model = create(family, **TINY[family])
    model.save_pretrained(tmp_path / "m")
    result = CliRunner().invoke(main, ["sample", str(tmp_path / "m"), "--n", "4", "--out", str(tmp_path / "s.png")])
    if not model.capabilities.decoder:  # nothing to sample from: a one-line error, exit code 2, no file
        assert result.exit_code == 2 and f"{family} has no decoder" in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "s.png").exists()
        return
    assert result.exit_code == 0, result.output
    from PIL import Image

    with Image.open(tmp_path / "s.png") as grid:
        assert grid.size[0] > 2 * 16  # a 2 x 2 grid of 16 px samples


@pytest.mark.slow
def test_held_out_loss_each_epoch_and_tensorboard_logs(tiny_shards, tmp_path):
    recipe = tiny_recipe("vae_disc", tiny_shards, epochs=2)
    recipe = replace(recipe, data=replace(recipe.data, holdout=0.25), train=replace(recipe.train, log="tensorboard"))
    run = train(recipe, tmp_path / "run", progress=False)
    rows = _rows(run)
    validation = [r for r in rows if any(k.startswith("val/") for k in r)]
    assert [r["epoch"] for r in validation] == [1, 2]
    assert {"val/vae/loss", "val/discriminator/loss"} <= set(validation[0])
    assert rows[-1]["step"] == 2 * 72 // 8  # 96 images, the last quarter held out
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 1000  # scalars and the epoch image grids


@pytest.mark.parametrize("option,message", [
    (["--batch-size", "0"], "batch_size (--batch-size) must be at least 1"),
    (["--epochs", "-1"], "epochs (--epochs) must be at least 1"),
    (["--max-steps", "-5"], "max_steps (--max-steps) must be 0"),
    (["--device", "bogus"], "--device 'bogus' is not a device"),
    (["--set", "train.lr=-1"], "train.lr must be positive"),
    (["--set", "train.log_every=0"], "train.log_every must be at least 1"),
    (["--set", "train.checkpoint_every=0"], "train.checkpoint_every must be at least 1"),
    (["--set", "data.num_workers=-1"], "data.num_workers must be 0 or more"),
    (["--set", "model.latent_dim=0"], "model.latent_dim must be at least 1"),
    (["--set", "train.groups.critic.lr=1e-4"], "vae has no parameter group 'critic'"),
    (["--set", "train.groups.encoder.lr=1e-4"], "vae has no parameter group 'encoder'; its groups: model"),
    (["--set", 'model.optimisers="both"'], "model.optimisers must be single (one optimiser) or separate"),
    (["--set", "data.holdout=1.5"], "data.holdout must be from 0 to below 1"),
])
def test_bad_training_settings_are_one_line_errors_and_write_nothing(option, message, tiny_shards, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "zoo/vae", "--data", str(tiny_shards), "--out", str(out), "--quiet",
                                       "--set", "data.num_workers=0"] + option)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_analyze_runs_on_a_trained_model_of_every_family(family, tiny_data, tmp_path):
    from latentds.analysis import run as analyze

    data = data_for(family, tiny_data)
    trained = train(tiny_recipe(family, data, epochs=1, max_steps=3), tmp_path / "run", progress=False)
    model = latentds.from_pretrained(trained)
    metrics = analyze(model, data, tmp_path / "analysis", probes=["walks", "metrics", "partition", "arithmetic"],
                      n=32, groups=("ids:0,1,2", "ids:3,4") if not model.capabilities.encoder else None, progress=False)
    assert ("walks" in metrics) == model.capabilities.decoder and (tmp_path / "analysis" / "report.html").is_file()
    assert ("metrics" in metrics) == (model.capabilities.encoder and model.capabilities.decoder)
    assert ("partition" in metrics) == model.capabilities.partitioned
    # from encoded data, or from generated samples chosen by id; nothing to decode without a decoder
    assert ("arithmetic" in metrics) == model.capabilities.decoder
    if not model.capabilities.decoder:
        assert set(metrics["skipped"]) == {"walks", "metrics", "partition", "arithmetic"}
        assert all(why == f"{family} has no decoder" for why in metrics["skipped"].values())
    if model.capabilities.partitioned:
        assert (tmp_path / "analysis" / "figures" / "swap_grid.png").is_file()


# --- the end-to-end CNN (no decoder): factor regression, label classification, FID features ----------------------

@pytest.fixture(scope="module")
def trained_e2e(tiny_shards, tmp_path_factory):
    """A tiny e2e_cnn trained 60 steps (5 epochs of 12 batches of 8) on the 96-image 16 px varied render, for two
    targets (all 15 default targets in 60 steps of so tiny a network leave phi_0 at r ~ 0.35-0.55 over seeds;
    these two reach 0.60-0.73 over seeds 0-4)."""
    recipe = tiny_recipe("e2e_cnn", tiny_shards, model={"targets": ["phi_0", "theta_0"]}, epochs=5, lr=3e-3,
                         sample_every_epoch=False, checkpoint_every=1000, log_every=12)
    return train(recipe, tmp_path_factory.mktemp("e2e") / "run", progress=False)


def _all_images(shards):
    from latentds.datasets.shards import load_shards

    return next(iter(load_shards(shards, batch_size=96, partial=True)))


@pytest.mark.slow
def test_a_trained_e2e_cnn_predicts_phi_0_on_held_in_data(trained_e2e, tiny_shards):
    from latentds.datasets.cuboids import FACTOR_NAMES

    assert _rows(trained_e2e)[-1]["step"] == 60
    model = latentds.from_pretrained(trained_e2e)
    batch = _all_images(tiny_shards)
    with torch.no_grad():
        predicted = model.predict(batch["image"])
    assert predicted.shape == (96, 2) and model.output_names == ["phi_0", "theta_0"]
    phi = predicted[:, model.output_names.index("phi_0")]
    truth = batch["factors"][:, FACTOR_NAMES.index("phi_0")]
    assert batch["factor_mask"][:, FACTOR_NAMES.index("phi_0")].all()  # every chain has joint 0
    r = torch.corrcoef(torch.stack([phi, truth]))[0, 1].item()
    assert r > 0.4, r  # chance: |r| < 0.2 for 96 samples (95%)
    assert -200 < phi.mean() < 200  # in degrees, not the normalised [0, 1]


@pytest.mark.slow
def test_e2e_cnn_features_are_an_fid_network_named_by_a_content_hash(trained_e2e, tiny_shards):
    import re

    from latentds.analysis.image_metrics import EncoderFeatures, fid
    from latentds.analysis.feature_network import feature_network_name

    model = latentds.from_pretrained(trained_e2e)
    name = feature_network_name(trained_e2e)
    assert re.fullmatch(r"e2e_cnn@[0-9a-f]{12}", name)
    assert feature_network_name(model) == name  # the same bytes as save_pretrained writes
    assert feature_network_name(create("e2e_cnn", **TINY["e2e_cnn"])) != name
    real = _all_images(tiny_shards)["image"]
    with torch.no_grad():
        assert model.encode(real).shape == (96, TINY["e2e_cnn"]["latent_dim"])
    features = EncoderFeatures(model, name=name)
    same = fid(real, real, features)
    assert same["feature_network"] == name and same["num_features"] == TINY["e2e_cnn"]["latent_dim"]
    assert abs(same["fid"]) < 1e-3
    assert fid(real[:48], real[48:].flip(3).roll(4, 2), features)["fid"] > 10 * abs(same["fid"])
    with pytest.raises(InvalidParameterError, match="holds no model.safetensors"):
        feature_network_name(trained_e2e / "figures")


def test_e2e_cnn_masks_absent_factors_and_reports_its_mistakes():
    from latentds.datasets.cuboids import FACTOR_NAMES

    torch.manual_seed(0)
    model = create("e2e_cnn", **TINY["e2e_cnn"], targets=["phi_0", "phi_2"]).eval()
    batch = _batch(model)
    batch["factor_mask"][:] = True
    batch["factor_mask"][:4, FACTOR_NAMES.index("phi_2")] = False  # two-joint chains: no joint 2
    before = model.losses(batch)["model"]
    batch["factors"][:4, FACTOR_NAMES.index("phi_2")] = 1e6  # an absent joint's value does not count
    after = model.losses(batch)["model"]
    assert set(after) == {"loss", "mse"} and torch.equal(before["mse"], after["mse"])
    assert model.predict(batch["image"]).shape == (8, 2) and model.output_names == ["phi_0", "phi_2"]
    with pytest.raises(InvalidParameterError, match="no cuboid factors.*set model.label") as error:
        model.losses({"image": batch["image"], "labels": batch["labels"]})
    assert len(str(error.value).splitlines()) == 1
    with pytest.raises(InvalidParameterError, match="'phi_9', 'size' are not cuboid factors"):
        create("e2e_cnn", **TINY["e2e_cnn"], targets=["phi_0", "phi_9", "size"])
    with pytest.raises(InvalidParameterError, match="needs model.n_classes"):
        create("e2e_cnn", **TINY["e2e_cnn"], label="identity")
    default = create("e2e_cnn", **TINY["e2e_cnn"])
    assert len(default.output_names) == 15 and not any("color" in n for n in default.output_names)
    assert set(default.factors_read.values()) == {None}  # unbound until the data's table is known
    with pytest.raises(InvalidParameterError, match=r"'n_cuboids', 'phi_0', 'theta_0' and 12 more not bound") as error:
        default.losses(_batch(create("e2e_cnn", **TINY["e2e_cnn"])))
    assert len(str(error.value).splitlines()) == 1
    default.bind_factors(["size", *FACTOR_NAMES])  # the data's own columns, by name
    assert default.factors_read["phi_0"] == FACTOR_NAMES.index("phi_0") + 1


def test_e2e_cnn_classifies_a_label_and_its_card_says_what_its_features_are_for(tiny_data, tmp_path):
    model = create("e2e_cnn", **TINY["e2e_cnn"], label="identity", n_classes=6, targets=["phi_0"])
    batch = _all_images(tiny_data["pairs"])  # a --identities 6 render
    terms = model.losses(batch)["model"]
    assert set(terms) == {"loss", "accuracy"} and torch.isfinite(terms["loss"]) and 0 <= terms["accuracy"] <= 1
    with torch.no_grad():
        probabilities = model.eval().predict(batch["image"])
    assert probabilities.shape == (96, 6) and torch.allclose(probabilities.sum(1), torch.ones(96))
    assert model.output_names[0] == "identity=0"
    with pytest.raises(InvalidParameterError, match="must be an integer 0..2"):
        create("e2e_cnn", **TINY["e2e_cnn"], label="identity", n_classes=3).losses(batch)
    with pytest.raises(InvalidParameterError, match="no label 'gender'"):
        create("e2e_cnn", **TINY["e2e_cnn"], label="gender", n_classes=2).losses(batch)
    model.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "no decoder" in card and "FID" in card and "feature_network_name" in card and "predict" in card


@pytest.mark.slow
def test_a_run_stopped_before_its_first_checkpoint_starts_again_and_a_damaged_checkpoint_is_named(tiny_shards,
                                                                                                 tmp_path):
    from latentds.errors import OutputDirectoryError

    recipe = tiny_recipe("vae", tiny_shards, epochs=1, max_steps=2)
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.toml").write_text(recipe.to_toml())  # what a run killed before its first checkpoint leaves
    (run / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirectoryError, match="add --resume to continue it"):
        train(recipe, run, progress=False)
    train(recipe, run, resume=True, progress=False)
    assert _rows(run)[-1]["step"] == 2 and (run / "notes.txt").read_text() == "mine"
    checkpoint = run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(OutputDirectoryError, match="checkpoint.pt.*damaged"):
        train(replace(recipe, train=replace(recipe.train, max_steps=4)), run, resume=True, progress=False)


@pytest.mark.slow
def test_subpackages_are_reachable_from_the_package():
    import subprocess
    import sys

    code = "import latentds; print(latentds.zoo.create('vae', image_size=16, width=8, latent_dim=4).family)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "vae", proc.stderr[-500:]
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        latentds.nonexistent  # noqa: B018


def test_cycle_vae_lr_drops_tenfold_after_80_of_its_150_epochs():
    """The reference (StepLR(step_size=80, gamma=0.1) over the document's 150 epochs): both groups keep 1e-4 up to
    the last step of epoch 79 and run at 1e-5 from the first step of epoch 80, however many steps an epoch has."""
    from latentds.zoo.train_settings import learning_rate

    recipe = load_recipe("zoo/cycle_vae")
    model = create("cycle_vae", **TINY["cycle_vae"])
    assert recipe.train.epochs == 150 and recipe.train.schedule == "step"
    for group in model.parameter_groups():
        settings = recipe.train.optim(group, model.capabilities.group_defaults.get(group))
        for per_epoch in (1, 7, 703, 1390, 4999):
            horizon = 150 * per_epoch
            assert learning_rate(settings, 80 * per_epoch - 1, horizon) == 1e-4
            assert learning_rate(settings, 80 * per_epoch, horizon) == pytest.approx(1e-5)
            assert learning_rate(settings, horizon - 1, horizon) == pytest.approx(1e-5)


@pytest.mark.slow
def test_cycle_vae_training_steps_its_lr_at_the_configured_point(tiny_data, tmp_path):
    recipe = tiny_recipe("cycle_vae", tiny_data["pairs"], epochs=3, lr=1e-3, decay_at=2 / 3, log_every=1)
    rows = _rows(train(recipe, tmp_path / "run", progress=False))
    lrs = {r["step"]: (r["lr/autoencoder"], r["lr/reverse_cycle"]) for r in rows if "lr/autoencoder" in r}
    assert max(lrs) == 36  # 12 steps an epoch: epoch 2 starts at step 24 (a row logs the LR of step "step")
    assert all(v == (1e-3, 1e-3) for s, v in lrs.items() if s < 24)
    assert all(v == pytest.approx((1e-4, 1e-4)) for s, v in lrs.items() if s >= 24) and 24 in lrs
