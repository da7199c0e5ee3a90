"""All of latentds's Hugging Face Hub network I/O: fetching a model's files, pushing a saved model, and the
reachability probe both run first.

Loading itself (config -> family -> weights) is ``LatentModel.from_pretrained`` in base.py, through huggingface_hub's
``ModelHubMixin`` hooks; it asks ``download_model`` here for the local directory of a Hub id. Every failure is a
one-line ``HubError`` saying what to do. Imports no torch and nothing of latentds but ``errors``.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from latentds.errors import HubError, InvalidParameterError, first_line

# The files of a saved model (the names huggingface_hub's mixin uses: constants.CONFIG_NAME, SAFETENSORS_SINGLE_FILE).
CONFIG, WEIGHTS = "config.json", "model.safetensors"
# What a model repository gets from a run directory: the model and what explains it, not the checkpoint.
PUSHED = [CONFIG, WEIGHTS, "README.md", "recipe.toml", "metrics.jsonl", "figures/*.png"]
DOWNLOAD_ADVICE = "give a local model directory instead, or set HF_HUB_OFFLINE=1 to use models already in the " \
                  "local cache"
COMMIT = re.compile(r"[0-9a-f]{40}")  # a snapshot directory of the Hugging Face cache is named by its commit


def check_hub_reachable(timeout: float = 3.0, advice: str = DOWNLOAD_ADVICE) -> None:
    """Fail in seconds, not after tens of seconds of retries, when the Hub cannot be reached: a TCP connection
    and, for an https endpoint, a TLS handshake (a host that accepts connections but fails TLS -- a captive
    portal, a broken proxy -- is otherwise retried with back-off). Skipped when a proxy is configured, as the
    proxy, not this machine, then connects to the Hub."""
    import ssl  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from huggingface_hub import constants  # noqa: PLC0415

    endpoint = urlparse(constants.ENDPOINT)
    host, secure = endpoint.hostname or "huggingface.co", endpoint.scheme != "http"
    if urllib.request.getproxies().get("https" if secure else "http"):
        return
    port = endpoint.port or (443 if secure else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if secure:  # the handshake only: certificates are the HTTP client's to check, with its own CA bundle
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                with context.wrap_socket(sock, server_hostname=host):
                    pass
    except ssl.SSLError as e:
        raise HubError(f"cannot reach the Hugging Face Hub at {host}: the TLS handshake failed "
                       f"({e.reason or first_line(e)}); {advice}") from None
    except OSError as e:  # refused, unreachable, no DNS, timed out (also during the handshake)
        raise HubError(f"cannot reach the Hugging Face Hub at {host} ({e.strerror or first_line(e)}); "
                       f"{advice}") from None


def download_model(repo_id: str, revision: str | None = None) -> Path:
    """The local directory holding ``config.json`` and ``model.safetensors`` of Hub model ``repo_id`` at
    ``revision``: a snapshot of the Hugging Face cache, taken from the cache when the files are there (no network),
    else downloaded after the reachability probe (with HF_HUB_OFFLINE set, the cache only). Both files come from
    one commit: the weights are fetched at the commit of the config."""
    config = Path(_fetch(repo_id, CONFIG, revision))
    commit = config.parent.name
    weights = Path(_fetch(repo_id, WEIGHTS, commit if COMMIT.fullmatch(commit) else revision))
    if weights.parent != config.parent:  # not the cache's snapshot layout: never pair files of two commits
        raise HubError(f"{repo_id}: {CONFIG} and {WEIGHTS} came from different snapshots ({config.parent}, "
                       f"{weights.parent}); clear the model from the Hugging Face cache and load it again")
    return config.parent


def _fetch(repo_id: str, filename: str, revision: str | None) -> str:
    """The local path of one file of a Hub repo: the cache first, then (unless offline) a download."""
    from huggingface_hub import constants, hf_hub_download  # noqa: PLC0415
    from huggingface_hub.errors import LocalEntryNotFoundError  # noqa: PLC0415

    try:  # the local cache first: no network needed for a model fetched before
        return hf_hub_download(repo_id, filename, revision=revision, local_files_only=True)
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise HubError(f"{repo_id}/{filename} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
                           "unset it to download, or give a local model directory") from None
    check_hub_reachable()
    try:
        return hf_hub_download(repo_id, filename, revision=revision)
    except Exception as e:  # repository or file not found, auth, network
        raise HubError(f"cannot fetch {filename} of {repo_id} from the Hub: {first_line(e)}") from None


def push_model(directory: str | os.PathLike, repo_id: str, *, private: bool = False) -> str:
    """Upload the model in ``directory`` (a saved model or a run directory: the files in PUSHED) to Hub repo
    ``repo_id`` (created if needed); return the repo URL."""
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
