"""Pushing saved models to the Hugging Face Hub (loading is in base.load_pretrained)."""

from __future__ import annotations

import os
from pathlib import Path

from latentds.errors import InvalidParameterError
from latentds.zoo.base import CONFIG, WEIGHTS, HubError, first_line, check_hub_reachable

# What a model repository gets from a run directory: the model and what explains it, not the checkpoint.
PUSHED = [CONFIG, WEIGHTS, "README.md", "recipe.toml", "metrics.jsonl", "figures/*.png"]


def push_model(directory: str | os.PathLike, repo_id: str, *, private: bool = False) -> str:
    """Upload the model in ``directory`` to Hub repo ``repo_id`` (created if needed); return the repo URL."""
    from huggingface_hub import HfApi, get_token  # noqa: PLC0415

    directory = Path(directory)
    for name in (CONFIG, WEIGHTS):
        if not (directory / name).is_file():
            raise InvalidParameterError(f"{directory} holds no {name}: nothing to push (train or save a model first)")
    if repo_id.count("/") != 1:
        raise InvalidParameterError(f"--repo {repo_id!r} must be org/name")
    if not get_token():
        raise HubError("no Hugging Face token: run `hf auth login` or set HF_TOKEN, then push again")
    check_hub_reachable(advice="check this machine's network connection (and HF_ENDPOINT or proxy settings, if "
                               "any), then push again")
    api = HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(directory), allow_patterns=PUSHED,
                          commit_message="Upload latentds model")
    except Exception as e:  # auth, permissions, network
        raise HubError(f"pushing to {repo_id} failed: {first_line(e)}") from None
    return str(url)
