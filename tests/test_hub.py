"""Saving and loading through huggingface_hub's ModelHubMixin hooks, and zoo/hub.py as the one place of Hub I/O."""

import json
import re
import socket
from pathlib import Path

import pytest
import torch

import latentds
from latentds.errors import HubError, InvalidParameterError
from latentds.zoo.base import LatentModel, create
from latentds.zoo.card import CardInfo
from latentds.zoo.config import to_dict

TINY = {"image_size": 16, "width": 8, "latent_dim": 4}


def test_the_mixin_hooks_carry_saving_and_loading():
    """LatentModel implements _save_pretrained / _from_pretrained and leaves the mixin's save_pretrained alone."""
    from huggingface_hub import ModelHubMixin

    assert "save_pretrained" not in LatentModel.__dict__ and "_save_pretrained" in LatentModel.__dict__
    assert "_from_pretrained" in LatentModel.__dict__
    assert LatentModel.save_pretrained is ModelHubMixin.save_pretrained


def test_config_json_is_the_models_config_with_its_family(tmp_path):
    model = create("beta_vae", **TINY)
    model.save_pretrained(tmp_path)
    text = (tmp_path / "config.json").read_text(encoding="utf-8")
    assert text == json.dumps(to_dict(model.config), sort_keys=True, indent=2)  # as the mixin writes a config
    assert json.loads(text)["family"] == "beta_vae"
    # the default config, built without arguments, is saved with its family too
    type(model)().save_pretrained(tmp_path / "default")
    assert json.loads((tmp_path / "default" / "config.json").read_text())["family"] == "beta_vae"


def test_saving_again_replaces_the_card_and_config(tmp_path):
    model = create("vae", **TINY)
    model.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path, model_card_kwargs={"card": CardInfo(title="A second save", metrics={"loss": 0.5})})
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("---\n") and "# A second save" in card and "| loss | 0.5 |" in card
    assert "library_name: latentds" in card and "pytorch_model_hub_mixin" not in card  # card.py's, not the mixin's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_loading_on_the_base_class_builds_the_family_the_config_names(tmp_path):
    saved = {family: create(family, **TINY) for family in ("vae", "dcgan")}
    for family, model in saved.items():
        model.save_pretrained(tmp_path / family)
        loaded = LatentModel.from_pretrained(tmp_path / family)
        assert type(loaded) is type(model) and not loaded.training and loaded.config == model.config
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    vae_class = type(saved["vae"])
    assert type(vae_class.from_pretrained(str(tmp_path / "vae"))) is vae_class
    with pytest.raises(InvalidParameterError, match="holds a dcgan model, not vae"):
        vae_class.from_pretrained(tmp_path / "dcgan")


def test_a_config_naming_an_unknown_family_is_one_clear_line(tmp_path):
    create("vae", **TINY).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for family, shown in (("vea", r"'vea' \(did you mean 'vae'\?\)"), (None, "None"), ([1], r"\[1\]")):
        (tmp_path / "config.json").write_text(json.dumps({**config, "family": family}))
        with pytest.raises(InvalidParameterError, match=rf"config.json: unknown model family {shown}; choose one of"):
            latentds.from_pretrained(tmp_path)


def _cached_repo(cache: Path, repo: str, commits: dict[str, dict[str, bytes]], main: str) -> None:
    """A Hub repo in the Hugging Face cache's real layout: snapshots/COMMIT/FILE, refs/main."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    for commit, files in commits.items():
        for name, data in files.items():
            (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
            (folder / "snapshots" / commit / name).write_bytes(data)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(main)


def test_a_hub_model_loads_from_one_snapshot_and_its_revision(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    old, new = create("vae", **TINY), create("vae", **TINY)
    for name, model in (("old", old), ("new", new)):
        model.save_pretrained(tmp_path / name)
    files = {name: {f: (tmp_path / name / f).read_bytes() for f in ("config.json", "model.safetensors")}
             for name in ("old", "new")}
    a, b = "a" * 40, "b" * 40
    _cached_repo(tmp_path / "cache", "latentds-test/two-commits", {a: files["old"], b: files["new"]}, main=b)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    latest = latentds.from_pretrained("latentds-test/two-commits")
    pinned = latentds.from_pretrained("latentds-test/two-commits", revision=a)
    assert torch.equal(latest.decoder.project[0].weight, new.decoder.project[0].weight)
    assert torch.equal(pinned.decoder.project[0].weight, old.decoder.project[0].weight)
    # a snapshot holding the config but not the weights is not mixed with another commit's weights
    _cached_repo(tmp_path / "cache", "latentds-test/half", {a: {"config.json": files["old"]["config.json"]},
                                                            b: files["new"]}, main=a)
    with pytest.raises(HubError, match=r"latentds-test/half/model.safetensors is not in the local Hugging Face cache"):
        latentds.from_pretrained("latentds-test/half")


def test_push_to_hub_goes_through_hub_py(tmp_path, monkeypatch):
    """model.push_to_hub is push_model on a fresh save: the token check, the probe, one-line errors."""
    model = create("vae", **TINY)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(HubError, match="no Hugging Face token"):
        model.push_to_hub("org/name")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_fake")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError(101, "down")))
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(HubError, match="cannot reach the Hugging Face Hub.*network connection"):
        model.push_to_hub("org/name")
    uploaded = {}

    class FakeApi:
        def create_repo(self, repo_id, private, exist_ok):
            return f"https://hub.example/{repo_id}"

        def upload_folder(self, repo_id, folder_path, allow_patterns, commit_message):
            uploaded.update({p.name: p.read_bytes() for p in Path(folder_path).iterdir()})

    monkeypatch.setattr("latentds.zoo.hub.check_hub_reachable", lambda **kwargs: None)
    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert model.push_to_hub("org/name") == "https://hub.example/org/name"
    model.save_pretrained(tmp_path)
    assert uploaded == {p.name: p.read_bytes() for p in tmp_path.iterdir()}


def test_hub_network_calls_live_in_hub_py_only():
    calls = re.compile(r"\b(hf_hub_download|snapshot_download|HfApi|upload_folder|upload_file|create_repo|"
                       r"create_connection)\b")
    package = Path(latentds.__file__).parent
    found = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if calls.search(p.read_text()))
    assert found == ["zoo/hub.py"]
