"""``run``: the chosen probes over (model, data) -> figures/, metrics.json, the latents cache and report.html.

``run`` checks the options (latentds.analysis.options) against the model before any work; claims the output
directory (latentds.shardsets.claim: its lock and marker; new, empty or an earlier analysis' own), builds the one ``Context`` (latentds.analysis.context: the model in eval mode on
its device, the options, the shared inputs prepared once), fills it with the data's latents (reused from ``out``
for the same weights, data and n), calls each probe in turn (registry order by default) and writes metrics.json
and report.html atomically. A probe's declared needs are
checked by the registry before it runs; a ``Skip`` it raises is recorded with its reason (and any figures).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

from latentds.analysis import strict_json
from latentds.analysis.library_warnings import library_warnings
from latentds.shardsets.atomic import write_atomic
from latentds.analysis.context import Context
from latentds.analysis.options import AnalysisOptions
from latentds.analysis.registry import Skip, registered
from latentds.errors import InvalidParameterError, OutputDirectoryError
from latentds.shardsets.claim import claim
from latentds.zoo.capabilities import capabilities_of

# what analyze writes into --out, recorded in its claim marker
ANALYSIS_FILES = ("metrics.json", "report.html", "figures/", "latents.safetensors", "labels.jsonl")


def run(model, data: str | os.PathLike, out: str | os.PathLike, options: AnalysisOptions | None = None, *,
        feature_model=None, labeller=None, progress: bool = True, **settings) -> dict:
    """Run the probes of ``options`` (an AnalysisOptions: latentds.analysis.options says what each option means;
    default: every probe) for ``model`` on shard set ``data``; write figures/, metrics.json, latents.safetensors +
    labels.jsonl (reused by later runs on the same model and data) and report.html into ``out``. Returns the
    metrics dict (with "skipped": {probe: reason}). ``settings`` are options given as keywords (``probes=["pca"],
    n=500``), read by ``AnalysisOptions.from_dict`` over ``options``: an unknown one is an error.

    ``feature_model``: a model with an encoder (e.g. a trained ``e2e_cnn``) whose features FID uses instead of the
    packaged frozen network (Inception weights win); one with ``predict`` also labels the generated samples of a
    model without an encoder, whose arithmetic groups are then chosen from a predicted factor (``groups`` as
    ``NAME>N``/``NAME<N``, default: its quartiles). ``labeller``: a model with ``predict`` that labels the
    generated samples for arithmetic instead of ``feature_model``.

    Everything that can be checked is checked before any work: the options, ``dims`` against the model's latent,
    the sequence set, the output directory."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    from latentds.analysis.report import write_report  # noqa: PLC0415

    options = options or AnalysisOptions()
    if settings:
        options = options.updated(**settings)
    options.check_model(model)
    available = registered()
    chosen = list(available) if options.probes is None else list(options.probes)
    if options.sequence_data:  # a path that does not exist is the user's mistake, not a probe to skip
        from latentds.datasets.shards import resolve_shards  # noqa: PLC0415
        from latentds.errors import ShardError  # noqa: PLC0415

        try:
            resolve_shards(options.sequence_data)
        except ShardError as e:
            raise InvalidParameterError(f"--sequence-data: {e}") from None
    out = Path(out).expanduser()
    with claim_output(out), disk_full_is_one_line(out):  # one writer per --out
        ctx = Context(model, str(data), out, options, feature_model=feature_model, labeller=labeller)
        ctx.codes = cached_codes(ctx, progress)
        metrics, figures, skipped, noted = {}, {}, {}, {}
        with tqdm(chosen, desc="probes", unit="probe", disable=not progress) as bar:
            for name in bar:
                bar.set_postfix_str(name)
                with library_warnings() as caught:
                    try:
                        metrics[name], figures[name] = available[name](ctx)
                    except Skip as why:
                        skipped[name] = str(why)
                        figures[name] = why.figures
                if caught:
                    noted[name] = caught
        metrics["skipped"] = skipped
        if noted:  # in the report, not on the terminal
            metrics["warnings"] = noted
        metrics["model"] = {"family": model.family, "latent_dim": model.config.latent_dim,
                            "has_encoder": capabilities_of(model).encoder}
        metrics["data"] = {"source": str(data), "n_encoded": 0 if ctx.codes is None else len(ctx.codes.keys)}
        if ctx.codes is not None and ctx.codes.factor_names:
            from latentds.analysis.labels import CONSTANT_REASON, constant_factors  # noqa: PLC0415

            metrics["data"]["factor_names"] = list(ctx.codes.factor_names)
            constant = constant_factors(ctx.codes)
            if constant:
                metrics["data"]["constant_factors"] = {"names": constant, "reason": CONSTANT_REASON}
        if options.sequence_data:
            metrics["data"]["sequence_data"] = options.sequence_data
        write_atomic(out / "metrics.json", strict_json.dumps(metrics, default=_jsonable))
        write_report(out, metrics, figures)
        return metrics


@contextlib.contextmanager
def disk_full_is_one_line(out: Path):
    """A full disk (ENOSPC, EDQUOT) while analyze writes -> OutputDirectoryError, one line; every output is
    written under a temporary name that is removed on failure, so nothing half-written is left."""
    try:
        yield
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise OutputDirectoryError(f"cannot write in --out {out}: the disk is full; free some space and run the "
                                   "same command again (outputs already written are kept)") from None


def cached_codes(ctx: Context, progress: bool):
    """The data's latents, reused from an earlier run only for the same weights, data and n (see
    analysis.encode.encoding_key); a damaged or cut-short cache is encoded again. None without an encoder."""
    from latentds.analysis.encode import LATENTS, Codes, encode_dataset, encoding_key, matches  # noqa: PLC0415
    from latentds.errors import CacheError  # noqa: PLC0415

    if not capabilities_of(ctx.model).encoder:
        return None
    if (ctx.out / LATENTS).is_file():
        try:
            codes = Codes.load(ctx.out)
        except CacheError:
            codes = None
        if codes is not None and matches(codes, encoding_key(ctx.model, ctx.data, ctx.options.n)):
            return codes
    codes = encode_dataset(ctx.model, ctx.data, n=ctx.options.n, progress=progress)
    codes.save(ctx.out)
    return codes


def claim_output(out: Path):
    """Claim ``out`` for analyze (latentds.shardsets.claim): new, empty, or an earlier analysis' --out (its marker;
    from versions before the marker, see ``_legacy``). Analyze rewrites ANALYSIS_FILES there, so a directory
    holding anything else is refused rather than overwritten; it never removes a file."""
    return claim(out, "analyze", files=ANALYSIS_FILES, recognise=lambda: _legacy(out))


def check_output_directory(out: str | os.PathLike) -> Path:
    """``out`` claimed for analyze and released again (created if needed): OutputDirectoryError naming the problem
    if analyze may not write there."""
    out = Path(out).expanduser()
    claim_output(out).release()
    return out


def _legacy(out: Path):
    """An analysis --out written before the claim marker: its old marker file, else its metrics.json or latents
    cache (``_earlier_analysis``); None if it is none of these."""
    from latentds.analysis.encode import LEGACY_MARKER  # noqa: PLC0415
    from latentds.shardsets.marker import Marker  # noqa: PLC0415

    if (out / LEGACY_MARKER).is_file() or _earlier_analysis(out):
        return Marker("analyze", files=ANALYSIS_FILES + (LEGACY_MARKER,))
    return None


def _earlier_analysis(out: Path) -> bool:
    """An analysis --out written before the marker existed: its metrics.json is analyze's (model, data, skipped),
    or, where that analysis stopped before writing it, its latents cache is (Codes.save's safetensors metadata)."""
    from latentds.analysis.encode import LATENTS  # noqa: PLC0415

    try:
        metrics = json.loads((out / "metrics.json").read_text())
        if isinstance(metrics, dict) and {"model", "data", "skipped"} <= set(metrics):
            return True
    except (OSError, ValueError):
        pass
    from safetensors import SafetensorError, safe_open  # noqa: PLC0415

    try:  # reads the header only
        with safe_open(str(out / LATENTS), "np") as f:
            return {"source", "labels_sha256", "rows"} <= set(f.metadata() or {})
    except (OSError, SafetensorError):
        return False


def _jsonable(value):
    import numpy as np  # noqa: PLC0415

    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
