"""The README.md model card written beside every saved model.

The metadata header is huggingface_hub's ``ModelCardData`` (library, tags and, for a study's run, its measured
numbers as ``model-index`` eval results, each naming the study, the data and -- for FID -- the feature network), so
the Hub shows and indexes them; the body is plain Markdown. What the card says beyond the model itself is one
``CardInfo``, passed explicitly: ``model.save_pretrained(path, model_card_kwargs={"card": CardInfo(...)})`` (the
trainer's: recipe, data, end-of-training metrics) or ``model_card(model, CardInfo(...))`` (a study's run: its
measured numbers).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from latentds.zoo.capabilities import capabilities_of
from latentds.zoo.config import to_dict


@dataclass(frozen=True)
class CardInfo:
    """What a model card says beyond the model itself; every field optional."""

    title: str = ""  # the card's heading (default: the family)
    recipe: str = ""  # the recipe's TOML
    data: str = ""  # Markdown naming the data it was trained on
    metrics: Mapping[str, Any] = field(default_factory=dict)  # {name: value}: a table of the card
    evaluation: Mapping[str, Any] | None = None  # a study's run: turns ``metrics`` into model-index results (card_data)


def card_data(model, card: CardInfo | None = None):
    """The card's ``ModelCardData``. ``card.evaluation`` (a study's run) turns ``card.metrics`` into model-index
    results: {"task": ..., "dataset_type": ..., "dataset_name": ...,
    "configs": {metric: config, e.g. the FID feature network}}."""
    from huggingface_hub import EvalResult, ModelCardData  # noqa: PLC0415

    info = card if card is not None else CardInfo()
    evaluation = info.evaluation
    results = []
    if evaluation:
        for name, value in (info.metrics or {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                continue
            results.append(EvalResult(
                task_type="latent-space-study", task_name=evaluation["task"],
                dataset_type=evaluation["dataset_type"], dataset_name=evaluation["dataset_name"],
                metric_type=name, metric_name=name, metric_value=float(value),
                metric_config=(evaluation.get("configs") or {}).get(name)))
    return ModelCardData(library_name="latentds", tags=["latentds", model.family, "latent-space"],
                         model_name=(info.title or model.family) if results else None,
                         eval_results=results or None)


def model_card(model, card: CardInfo | None = None) -> str:
    """Markdown with Hub metadata: family, config, capabilities, and what ``card`` says of recipe, data, metrics."""
    from huggingface_hub import ModelCard  # noqa: PLC0415

    info = card if card is not None else CardInfo()
    declared = capabilities_of(model)
    config = json.dumps(to_dict(model.config), indent=2)
    n_params = sum(p.numel() for p in model.parameters())
    parts = [
        f"# {info.title or model.family}",
        "",
        f"A `{model.family}` model of [latentds](https://github.com/latentds/latentds) "
        f"({n_params:,} parameters, {model.config.image_size}x{model.config.image_size} RGB images in [-1, 1], "
        f"latent dimension {model.config.latent_dim}).",
        "",
        f"{model.summary}." if model.summary else "",
        "",
        f"Capabilities: {_capabilities(declared)}; trained on {declared.batches} batches.",
        "",
        *(["## Use", "", model.card_usage, ""] if model.card_usage else []),
        "## Loading",
        "",
        "```python",
        "import latentds",
        'model = latentds.from_pretrained("THIS_REPO_OR_DIRECTORY")  # config.json + model.safetensors, no pickle',
        "z = model.encode(images)        # images: (N, 3, H, W) in [-1, 1]" if declared.encoder else
        "z = model.prior(16)             # codes from the prior",
        "x = model.decode(z); samples = model.sample(16)" if declared.decoder else
        "# no decoder: decode, sample and reconstruct raise an error",
        "```",
        "",
        "## Config",
        "",
        "```json",
        config,
        "```",
    ]
    if info.data:
        parts += ["", "## Data", "", str(info.data)]
    if info.recipe:
        parts += ["", "## Recipe", "", "```toml", str(info.recipe).strip(), "```"]
    if info.metrics:
        rows = "\n".join(f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |"
                         for k, v in info.metrics.items())
        heading = "## Metrics (measured by the study)" if info.evaluation else "## Metrics (end of training)"
        parts += ["", heading, "", "| metric | value |", "|---|---|", rows]
    body = "\n".join(parts) + "\n"
    return str(ModelCard(f"---\n{card_data(model, info).to_yaml()}\n---\n\n{body}"))


def _capabilities(declared) -> str:
    names = [name for name, has in (("encoder", declared.encoder), ("posterior", declared.posterior),
                                    ("s/z partition", declared.partitioned)) if has]
    if not declared.decoder:
        return ", ".join(names + ["no decoder"])
    return ", ".join(names) if names else "decoder only (no encoder)"
