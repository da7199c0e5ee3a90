"""Studies: every packaged study reads at every scale, runs at smoke scale end to end, resumes, and refuses misuse."""

import json

import pytest
from click.testing import CliRunner

from latentds.cli import main
from latentds.errors import InvalidParameterError, OutputDirectoryError
from latentds.studies import SCALES, load_study, run_study, study_names
from latentds.zoo.base import load_pretrained

pytestmark = pytest.mark.slow  # every test here runs whole studies (training and analysis)

STUDIES = study_names()
VERDICTS = ("confirmed", "contradicted", "no measurable difference", "mixed", "not measured", "indicative (1 seed)")


def test_the_five_studies_are_packaged():
    assert set(STUDIES) == {"disc-strategies", "cycle-identity", "beta-sweep", "gan-walks", "kl-weight"}


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", STUDIES)
def test_every_study_reads_at_every_scale(name, scale):
    study = load_study(name, scale)
    assert study.runs and study.tables and study.description and study.paper and set(study.scales) == set(SCALES)
    for run in study.runs:
        assert run.data in study.data and not any(isinstance(v, dict) and "smoke" in v for v in run.sets.values())


def test_a_twin_of_a_render_with_identities_keeps_the_training_identities():
    study = load_study("cycle-identity", "cpu")
    train, twin = study.data["cuboids"], study.data["cuboids-eval"]
    assert twin["identity_seed"] == train.get("seed", 0) and twin["seed"] != train.get("seed", 0)
    assert twin["identities"] == train["identities"] and "of the training set's identities" in study.evaluation
    assert "identity_seed" not in load_study("beta-sweep", "cpu").data["varied-eval"]  # renders without identities


def test_a_matrix_expands_into_one_run_per_combination():
    study = load_study("disc-strategies", "smoke")
    grid = study.runs_matching("vae_disc-*-*")
    assert len(grid) == 8
    assert {(r.axes["model.update_strategy"], r.axes["train.schedule"]) for r in grid} == {
        (s, lr) for s in ("both", "inferior", "probabilistic_inferior", "accuracy_threshold")
        for lr in ("constant", "step")}


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Every study at smoke scale, once (its external data not given)."""
    results = {}
    for name in STUDIES:
        out = tmp_path_factory.mktemp(name)
        results[name] = (out, run_study(name, out, scale="smoke", seeds=1, progress=False))
    return results


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_runs_at_smoke_scale_and_writes_its_results(name, smoke_runs):
    out, results = smoke_runs[name]
    study = load_study(name, "smoke")
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results, default=str))
    markdown = (out / "results.md").read_text()
    assert f"Study `{name}` at scale `smoke`" in markdown and "## What differs from the published setting" in markdown
    external = {k for k, v in study.data.items() if v.get("external")}
    for run in study.runs:
        if run.data in external:  # skipped, saying which --data it needs
            assert "needs --data" in results["skipped"][run.name] and run.name in markdown
            continue
        model_dir = out / "runs" / run.name / "seed-0"
        model = load_pretrained(model_dir)
        assert model.family in run.recipe and (model_dir / "README.md").is_file()
        if run.analyze:
            assert (model_dir / "analysis" / "report.html").is_file() and results["runs"][run.name]["0"]
    for table in results["tables"]:
        assert table["title"] in markdown and table["rows"]
        measured = [row for row in table["rows"] if row["ours"] is not None]
        if all(row["run"] in results["skipped"] for row in table["rows"]):
            assert not measured  # a table of runs that need --data stays empty
            continue
        assert measured, table["title"]
        for row in measured:
            assert row["ours"]["n"] == 1 and row["ours"]["values"][0] == row["ours"]["mean"]
    for finding in results["findings"]:
        assert finding["verdict"].startswith(VERDICTS) and finding["claim"] in markdown
        assert not finding["verdict"].startswith(("confirmed", "contradicted"))  # one seed: never a verdict
    import re

    links = re.findall(r"\]\((figures/[^)]+)\)", markdown)
    assert links and all((out / link).is_file() for link in links)  # results.md travels with its figures


def test_published_numbers_sit_beside_ours(smoke_runs):
    out, results = smoke_runs["disc-strategies"]
    fid = results["tables"][0]
    rows = {(r["row"], r["column"]): r for r in fid["rows"]}
    assert rows[("inferior", "constant")]["published"] == 50.53 and rows[("accuracy_threshold", "step")]["published"] == 28.09
    assert all(r["ours"]["mean"] > 0 for r in fid["rows"])
    markdown = (out / "results.md").read_text()
    from latentds.analysis.feature_network import DEFAULT

    assert DEFAULT in markdown  # the FID feature network is named: the packaged frozen one
    assert "## Agreement with the published numbers" in markdown
    # ours are in the packaged CNN's features, the published FIDs in Inception's: the ranking compares, not values
    assert "FID of prior samples against held-out Varied data, per discriminator-update strategy: the values do not compare" in markdown
    untrained = sum(r["trained"] is False for r in fid["rows"])  # smoke models fail gates: left out of the ranking
    if untrained:
        assert f"{untrained} of 8 rows come from runs that did not train" in markdown
    if 8 - untrained >= 3:
        assert f"Spearman's rho between our and the published values over {8 - untrained} rows" in markdown
    else:
        assert "not measured: fewer than 3 rows to rank" in markdown and "Spearman" not in markdown
    assert "vs published 50.53" not in markdown and "| 50.53 (inception-v3) |" in markdown
    metrics = results["runs"]["vae_disc-both-constant"]["0"]
    assert metrics["fid"]["samples"]["feature_network"] == DEFAULT and metrics["fid"]["floor"]["fid"] >= 0


def test_rerunning_resumes_without_retraining_and_refuses_another_study(smoke_runs):
    out, first = smoke_runs["gan-walks"]
    weights = out / "runs" / "dcgan-cuboids" / "seed-0" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = run_study("gan-walks", out, scale="smoke", seeds=1, progress=False)
    assert weights.stat().st_mtime_ns == stamp and again["tables"] == first["tables"]
    with pytest.raises(OutputDirectoryError, match="holds study gan-walks at scale smoke"):
        run_study("kl-weight", out, scale="smoke", progress=False)
    with pytest.raises(OutputDirectoryError, match="holds study gan-walks"):
        run_study("gan-walks", out, scale="cpu", progress=False)


def test_a_run_killed_before_it_finished_is_trained_again_or_resumed(tmp_path):
    out = tmp_path / "kl"
    run_study("kl-weight", out, scale="smoke", seeds=1, progress=False)
    run_dir = out / "runs" / "vae-cuboids-alpha1" / "seed-0"
    (run_dir / ".finished").unlink()
    (run_dir / "analysis" / ".finished").unlink()
    results = run_study("kl-weight", out, scale="smoke", seeds=1, progress=False)
    assert (run_dir / ".finished").is_file() and results["runs"]["vae-cuboids-alpha1"]["0"]["metrics"]["pcc"] is not None


def test_a_resumed_study_trains_again_a_run_whose_settings_changed_and_analyses_again_on_new_options(tmp_path):
    from importlib.resources import files

    text = files("latentds.studies.packaged").joinpath("kl-weight.toml").read_text(encoding="utf-8")
    study_file = tmp_path / "kl.toml"
    study_file.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    run_study(str(study_file), out, scale="smoke", seeds=1, progress=False)
    alpha1, alpha4 = (out / "runs" / f"vae-cuboids-{a}" / "seed-0" for a in ("alpha1", "alpha4"))
    stamps = {d: ((d / "model.safetensors").stat().st_mtime_ns, (d / "analysis" / "metrics.json").stat().st_mtime_ns)
              for d in (alpha1, alpha4)}
    run_study(str(study_file), out, scale="smoke", seeds=1, progress=False)  # unchanged: nothing is redone
    assert all(((d / "model.safetensors").stat().st_mtime_ns,
                (d / "analysis" / "metrics.json").stat().st_mtime_ns) == stamps[d] for d in stamps)
    # alpha1's step count and alpha4's probe count change in the study file
    lines = study_file.read_text(encoding="utf-8").split("\n")
    at = {name: next(i for i, line in enumerate(lines) if line == f'name = "vae-cuboids-{name}"') for name in ("alpha1", "alpha4")}
    train_line = next(i for i in range(at["alpha1"], at["alpha1"] + 6) if lines[i].startswith("train = "))
    assert "max_steps = {smoke = 3" in lines[train_line]
    lines[train_line] = lines[train_line].replace("max_steps = {smoke = 3", "max_steps = {smoke = 4")
    analyze_line = next(i for i in range(at["alpha4"], at["alpha4"] + 6) if lines[i].startswith("analyze = "))
    assert "smoke = 48" in lines[analyze_line]
    lines[analyze_line] = lines[analyze_line].replace("smoke = 48", "smoke = 40")
    study_file.write_text("\n".join(lines), encoding="utf-8")
    results = run_study(str(study_file), out, scale="smoke", seeds=1, progress=False)
    assert (alpha1 / "model.safetensors").stat().st_mtime_ns != stamps[alpha1][0]
    assert "max_steps = 4" in (alpha1 / "recipe.toml").read_text()
    assert (alpha4 / "model.safetensors").stat().st_mtime_ns == stamps[alpha4][0]  # trained as before
    assert (alpha4 / "analysis" / "metrics.json").stat().st_mtime_ns != stamps[alpha4][1]  # analysed again
    assert results["runs"]["vae-cuboids-alpha4"]["0"]["metrics"]["pcc"] is not None


def test_three_seeds_show_intervals_gates_and_floors(tmp_path):
    """`latentds study NAME --scale smoke --seeds 3`: every row a mean with its 95% interval over 3 seeds, every
    run's health gates, the trivial-image baselines beside the image metrics, and the rule as computed."""
    out = tmp_path / "kl"
    result = CliRunner().invoke(main, ["study", "kl-weight", "--scale", "smoke", "--seeds", "3", "--out", str(out),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    row = results["tables"][0]["rows"][0]
    assert row["ours"]["n"] == 3 and len(row["ours"]["values"]) == 3 and row["ours"]["ci"][0] < row["ours"]["mean"]
    assert (out / "runs" / "vae-cuboids-alpha1" / "seed-2" / "model.safetensors").is_file()
    health = results["health"]["vae-cuboids-alpha1"]
    assert health["checked"] and set(health["seeds"]) == {"0", "1", "2"}
    assert {"sample_diversity", "reconstruction", "decoder_sensitivity", "active_units"} <= set(
        health["seeds"]["0"]["gates"])
    ssim = next(t for t in results["tables"] if t["metric"] == "metrics.ssim")
    assert {"background", "mean_image"} <= set(ssim["rows"][0]["floors"])
    markdown = (out / "results.md").read_text()
    assert "## How verdicts are computed" in markdown and "Student's t" in markdown and "## Health" in markdown
    assert "(n=3)" in markdown and "| background | mean_image |" in markdown
    # three steps of training: not a trained model, so its finding is not measured, naming the gates
    finding = results["findings"][0]
    assert finding["verdict"].startswith("not measured") and "reconstruction" in finding["verdict"]
    assert "varied-eval" in results["evaluation"] and (out / "data" / "varied-eval" / "manifest.json").is_file()


def test_study_cli_lists_runs_and_refuses_bad_input(tmp_path):
    runner = CliRunner()
    listing = runner.invoke(main, ["study"])
    assert listing.exit_code == 0 and all(name in listing.stdout for name in STUDIES)
    for args, message in [(["nope"], "unknown study 'nope'; choose one of"),
                          (["gan-walks", "--scale", "smoke", "--data", "x=/tmp", "--out", str(tmp_path / "a")],
                           "no external data 'x'; it takes: faces"),
                          (["gan-walks", "--scale", "smoke", "--seeds", "0", "--out", str(tmp_path / "b")],
                           "--seeds must be at least 1")]:
        result = runner.invoke(main, ["study"] + args)
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(InvalidParameterError, match="--scale must be one of"):
        load_study("gan-walks", "huge")


def test_a_study_runs_card_carries_its_numbers_as_hub_model_index(smoke_runs):
    from huggingface_hub import ModelCard

    out, results = smoke_runs["disc-strategies"]
    card = ModelCard.load(out / "runs" / "vae_disc-both-constant" / "seed-0" / "README.md")
    assert card.data.library_name == "latentds" and "vae_disc" in card.data.tags
    by_metric = {r.metric_type: r for r in card.data.eval_results}
    fid = results["runs"]["vae_disc-both-constant"]["0"]["fid"]["samples"]
    assert by_metric["fid.samples.fid"].metric_value == pytest.approx(fid["fid"])
    assert fid["feature_network"] in by_metric["fid.samples.fid"].metric_config  # FID names its network
    assert "disc-strategies" in by_metric["fid.samples.fid"].task_name
    assert "manifest sha256" in by_metric["fid.samples.fid"].dataset_name
    assert "model-index" in (out / "runs" / "vae_disc-both-constant" / "seed-0" / "README.md").read_text()
    # a run the study only trains (gan-walks' labeller) still gets the study's card: study, scale, data hash
    labeller = (smoke_runs["gan-walks"][0] / "runs" / "labeller" / "seed-0" / "README.md").read_text()
    assert "study gan-walks, run labeller, scale smoke, seed 0" in labeller and "manifest sha256" in labeller


def test_zoo_pretrained_lists_a_studys_models_with_their_numbers(smoke_runs):
    from click.testing import CliRunner

    from latentds.cli import main

    out, results = smoke_runs["disc-strategies"]
    table = CliRunner().invoke(main, ["zoo", "--pretrained", str(out), "--markdown"])
    assert table.exit_code == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "vae_disc-both-constant" in line)
    fid = results["runs"]["vae_disc-both-constant"]["0"]["fid"]["samples"]["fid"]
    assert row.startswith("| `") and f"fid.samples.fid {fid:.4g}" in row and "| vae_disc |" in row
    assert table.stdout.count("\n| `") == sum(1 for _ in out.rglob("model.safetensors"))
