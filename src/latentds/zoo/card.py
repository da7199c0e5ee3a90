"""The README.md model card written beside every saved model."""

from __future__ import annotations

import json

from latentds.zoo.config import to_dict


def model_card(model) -> str:
    """Markdown with Hub metadata: family, config, and what ``model.card_info`` says of recipe, data, metrics."""
    info = model.card_info
    config = json.dumps(to_dict(model.config), indent=2)
    n_params = sum(p.numel() for p in model.parameters())
    parts = [
        "---",
        "library_name: latentds",
        "tags:",
        "- latentds",
        f"- {model.family}",
        "- latent-space",
        "---",
        "",
        f"# {info.get('title', model.family)}",
        "",
        f"A `{model.family}` model of [latentds](https://github.com/latentds/latentds) "
        f"({n_params:,} parameters, {model.config.image_size}x{model.config.image_size} RGB images in [-1, 1], "
        f"latent dimension {model.config.latent_dim}).",
        "",
        f"{model.summary}." if model.summary else "",
        "",
        f"Capabilities: {_capabilities(model)}; trained on {model.batches} batches.",
        "",
        *(["## Use", "", model.card_usage, ""] if getattr(model, "card_usage", "") else []),
        "## Loading",
        "",
        "```python",
        "import latentds",
        'model = latentds.from_pretrained("THIS_REPO_OR_DIRECTORY")  # config.json + model.safetensors, no pickle',
        "z = model.encode(images)        # images: (N, 3, H, W) in [-1, 1]" if model.has_encoder else
        "z = model.prior(16)             # codes from the prior",
        "x = model.decode(z); samples = model.sample(16)" if model.has_decoder else
        "# no decoder: decode, sample and reconstruct raise an error",
        "```",
        "",
        "## Config",
        "",
        "```json",
        config,
        "```",
    ]
    if info.get("data"):
        parts += ["", "## Data", "", str(info["data"])]
    if info.get("recipe"):
        parts += ["", "## Recipe", "", "```toml", str(info["recipe"]).strip(), "```"]
    if info.get("metrics"):
        rows = "\n".join(f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |"
                         for k, v in info["metrics"].items())
        parts += ["", "## Metrics (end of training)", "", "| metric | value |", "|---|---|", rows]
    return "\n".join(parts) + "\n"


def _capabilities(model) -> str:
    names = [name for name, has in (("encoder", model.has_encoder), ("posterior", model.is_posterior),
                                    ("s/z partition", model.is_partitioned)) if has]
    if not model.has_decoder:
        return ", ".join(names + ["no decoder"])
    return ", ".join(names) if names else "decoder only (no encoder)"
