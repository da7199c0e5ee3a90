"""The manifest fields and README.md dataset card of a rendered shard set (the shared header, the card's Loading
section and the writing are in latentds.shardsets)."""

from __future__ import annotations

import json

from latentds.render.factors import CUBOID, FACTORS, PRESETS, sequence_factors
from latentds.shardsets.manifest import brace_pattern, factor_rows, loading_section

MEMBERS = {
    "png": "8-bit RGB image",
    "json": "every factor and setting of the sample (enough to re-render it exactly)",
    "depth.npy": "float32 depth in scene units along the camera axis at pixel centres, 0 where no cuboid is",
    "mask.png": "8-bit cuboid ids at pixel centres: 0 background, k+1 where cuboid k is the nearest surface",
}
LATENTDS_GIVES = "decoded tensors, a fixed-length factor vector with a mask for missing joints"


def render_command(spec) -> str:
    """The CLI command that makes exactly this shard set."""
    parts = ["latentds render", f"--{spec.preset}", f"--n {spec.n}", f"--size {spec.size}", f"--seed {spec.seed}",
             f"--shard-size {spec.shard_size}"]
    if spec.sequence:
        parts.append(f"--sequence {spec.sequence} --steps {spec.steps}")
        if spec.sweep:
            parts.append(f"--sweep {spec.sweep}")
    if spec.identities:
        parts.append(f"--identities {spec.identities}")
        if spec.identity_seed is not None:
            parts.append(f"--identity-seed {spec.identity_seed}")
    if spec.extras:
        parts.append(f"--with {','.join(spec.extras)}")
    if spec.name != spec.preset:
        parts.append(f"--name {spec.name}")
    return " ".join(parts)


def manifest_fields(spec) -> dict:
    """A render's own manifest fields (the shared header is filled in by latentds.shardsets.spec.ShardSetSpec)."""
    varies = set(PRESETS[spec.preset].varies)
    varies.update(sequence_factors(spec))
    return {
        "preset": spec.preset,
        "description": PRESETS[spec.preset].description,
        "summary": f"preset {spec.preset!r}, seed {spec.seed}" + (f", {spec.identities:,} identities"
                                                                  if spec.identities else ""),
        "seed": spec.seed,
        "members": {m: MEMBERS[m] for m in ["png", "json"] + [f"{e}.{'npy' if e == 'depth' else 'png'}"
                                                             for e in spec.extras]},
        "camera": dict(PRESETS[spec.preset].camera),
        "cuboid": dict(CUBOID),
        "factors": [f.as_json(f.name in varies) for f in FACTORS],
    }


def dataset_card(manifest: dict) -> str:
    """The README.md written beside the shards."""
    rows = factor_rows(manifest["factors"])
    members = "\n".join(f"- `KEY.{m}`: {d}" for m, d in manifest["members"].items())
    pattern = brace_pattern(manifest)
    k = manifest.get("params", {}).get("identities")
    # Said only when used, so the cards of renders without identities keep their bytes.
    own = manifest.get("params", {}).get("identity_seed")
    drawn = ("the seed and the identity" if own is None
             else f"seed {own} and the identity: the identities of that render")
    identities = (f"\n{k:,} identities: each sample's `identity` label (0..{k - 1}) fixes the chain's cuboid count "
                  f"and colours (drawn from {drawn}); pose and lights vary per sample.\n" if k else "")
    return f"""# {manifest['name']}: articulated cuboid chains

{manifest['count']:,} images of {manifest['image_size']}x{manifest['image_size']} pixels rendered with latentds
{manifest['generator_version']} (pyrender, headless OpenGL). Preset `{manifest['preset']}`: {manifest['description']}.

Made by:

    {manifest['command']}

The same command gives the same bytes (sample i depends only on the seed and i); `latentds info --verify DIR`
checks every shard against `manifest.json`.

## Layout

WebDataset shards `{pattern}`, one sample per key (the zero-padded global index), members:

{members}

`manifest.json` lists every shard with its sample count, byte size and sha256, the parameters of the render, and
the factor table below.

## Factors

A chain of equal cuboids ({', '.join(f'{k} {v:g}' for k, v in manifest['cuboid'].items())}) joined end to end.
Joint j turns cuboid j+1 relative to cuboid j:
Phi about the parent's vertical axis, Theta about its lateral axis, Lambda (twist) about the child's long axis.
Angles are in degrees. Joint 0 is at the world origin; the camera is fixed: {json.dumps(manifest['camera'])}.

{rows}
{identities}
{loading_section(manifest, LATENTDS_GIVES)}"""
