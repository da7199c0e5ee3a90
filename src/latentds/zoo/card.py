"""The README.md model card written beside every saved model.

The metadata header is huggingface_hub's ``ModelCardData`` (library, tags and, for a study's run, its measured
numbers as ``model-index`` eval results, each naming the study, the data and -- for FID -- the feature network), so
the Hub shows and indexes them; the body is plain Markdown.
"""

from __future__ import annotations

import json
import math

from latentds.zoo.config import to_dict


def card_data(model):
    """The card's ``ModelCardData``. ``model.card_info["evaluation"]`` (a study's run) turns ``metrics`` into
    model-index results: {"task": ..., "dataset_type": ..., "dataset_name": ...,
    "configs": {metric: config, e.g. the FID feature network}}."""
    from huggingface_hub import EvalResult, ModelCardData  # noqa: PLC0415

    info = model.card_info
    evaluation = info.get("evaluation")
    results = []
    if evaluation:
        for name, value in (info.get("metrics") or {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                continue
            results.append(EvalResult(
                task_type="latent-space-study", task_name=evaluation["task"],
                dataset_type=evaluation["dataset_type"], dataset_name=evaluation["dataset_name"],
                metric_type=name, metric_name=name, metric_value=float(value),
                metric_config=(evaluation.get("configs") or {}).get(name)))
    return ModelCardData(library_name="latentds", tags=["latentds", model.family, "latent-space"],
                         model_name=info.get("title", model.family) if results else None,
                         eval_results=results or None)


def model_card(model) -> str:
    """Markdown with Hub metadata: family, config, and what ``model.card_info`` says of recipe, data, metrics."""
    from huggingface_hub import ModelCard  # noqa: PLC0415

    info = model.card_info
    config = json.dumps(to_dict(model.config), indent=2)
    n_params = sum(p.numel() for p in model.parameters())
    parts = [
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
        *(["## Use", "", model.card_usage, ""] if model.card_usage else []),
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
        heading = "## Metrics (measured by the study)" if info.get("evaluation") else "## Metrics (end of training)"
        parts += ["", heading, "", "| metric | value |", "|---|---|", rows]
    body = "\n".join(parts) + "\n"
    return str(ModelCard(f"---\n{card_data(model).to_yaml()}\n---\n\n{body}"))


def _capabilities(model) -> str:
    names = [name for name, has in (("encoder", model.has_encoder), ("posterior", model.is_posterior),
                                    ("s/z partition", model.is_partitioned)) if has]
    if not model.has_decoder:
        return ", ".join(names + ["no decoder"])
    return ", ".join(names) if names else "decoder only (no encoder)"
