"""results.md's comparisons: values only where they are on the published scale, else the ranking; findings
count a difference only beyond the noise."""

from pathlib import Path

import pytest

from latentds.studies.results import comparable, floors, measure, rank_agreement


def _row(name, ours, published, network="e2e_cnn@abc"):
    return {"row": name, "column": "", "ours": {"mean": ours, "std": 0.0, "n": 1, "ci": [ours, ours]},
            "published": published,
            "feature_network": network}


def _table(rows, published_features="inception-v3", lower=True):
    return {"rows": rows, "published_features": published_features, "lower_is_better": lower}


def test_values_in_another_feature_network_are_not_comparable():
    rows = [_row("a", 1.0, 10.0), _row("b", 2.0, 20.0)]
    assert not comparable(_table(rows))
    assert comparable(_table([_row("a", 1.0, 10.0, network="inception-v3 (torch-fidelity FID weights)")]))
    assert comparable(_table(rows, published_features=None))  # a table without a named network compares values


def test_rank_agreement_reads_order_not_scale():
    same = _table([_row("a", 1.0, 10.0), _row("b", 2.0, 30.0), _row("c", 3.0, 20.0), _row("d", 4.0, 40.0)])
    ranks = rank_agreement(same)
    assert ranks["spearman"] == pytest.approx(0.8) and ranks["n"] == 4
    assert ranks["best_ours"] == ranks["best_published"] == "a"
    reversed_ = _table([_row("a", 1.0, 40.0), _row("b", 2.0, 30.0), _row("c", 3.0, 20.0)])
    assert rank_agreement(reversed_)["spearman"] == pytest.approx(-1.0)
    assert rank_agreement(reversed_)["best_published"] == "c"
    higher = _table([_row("a", 1.0, 40.0), _row("b", 2.0, 30.0), _row("c", 3.0, 20.0)], lower=False)
    assert rank_agreement(higher)["best_ours"] == "c" and rank_agreement(higher)["best_published"] == "a"
    assert rank_agreement(_table([_row("a", 1.0, 1.0), _row("b", 2.0, 2.0)])) is None  # too few to rank


def test_rank_agreement_says_whether_the_ranking_could_be_chance():
    eight = _table([_row(str(i), float(i), float(p)) for i, p in enumerate([3, 1, 2, 8, 4, 7, 5, 6])])
    ranks = rank_agreement(eight)
    assert ranks["n"] == 8 and ranks["exact"] and ranks["spearman"] == pytest.approx(0.619, abs=1e-3)
    assert ranks["p_value"] > 0.05  # rho 0.62 over 8 rows: not beyond chance at 5%


def test_a_measured_value_carries_its_probes_error():
    metrics = {"factors": {"phi_0": {"linear": 0.9, "linear_se": 0.02}},
               "fid": {"samples": {"fid": 12.0, "fid_ci": [10.04, 13.96]}}, "metrics": {"mse": 0.01}}
    assert measure(metrics, "factors.phi_0.linear") == (0.9, 0.02)
    value, se = measure(metrics, "fid.samples.fid")
    assert value == 12.0 and se == pytest.approx(1.0, abs=1e-3)  # a 95% interval of +-1.96
    assert measure(metrics, "metrics.mse") == (0.01, None)
    assert measure(metrics, "metrics.ssim") == (None, None)
    assert measure({"x": {"y": float("nan")}}, "x.y") == (None, None)


def test_floors_and_baselines_are_found_beside_a_metric():
    metrics = {"scores": {"mig": 0.2, "floor": {"mig": 0.001}}, "fid": {"samples": {"fid": 30.0},
                                                                       "floor": {"fid": 2.0}},
               "metrics": {"ssim": 0.9, "baselines": {"background": {"ssim": 0.83}, "mean_image": {"ssim": 0.82}}}}
    assert floors(metrics, "scores.mig") == {"floor": 0.001}
    assert floors(metrics, "fid.samples.fid") == {"floor": 2.0}
    assert floors(metrics, "metrics.ssim") == {"background": 0.83, "mean_image": 0.82}


def test_what_differs_is_generated_from_the_documents_settings():
    from latentds.studies import load_study
    from latentds.studies.differs import differences, markdown

    study = load_study("kl-weight", "cpu")
    rows = differences(study)
    epochs = next(r for r in rows if r["key"] == "train.epochs")
    assert epochs["ours"] == 8 and epochs["published"] == 100 and len(epochs["runs"]) == len(study.runs)
    assert "| `train.epochs` | 8 | 100 | all |" in markdown(rows, len(study.runs))
    assert not differences(load_study("kl-weight", "full"))  # full is the document's setting
    # a data setting counts only for the runs that train on that data
    disc = differences(load_study("disc-strategies", "cpu"))
    varied = next(r for r in disc if r["key"] == "data.varied.n")
    assert varied["published"] == 500_000 and not any("phi" in run for run in varied["runs"])


def test_a_setting_nobody_stated_shows_up(tmp_path):
    from latentds.studies import load_study
    from latentds.studies.differs import differences

    text = (Path(__file__).parents[1] / "src/latentds/studies/packaged/kl-weight.toml").read_text()
    file = tmp_path / "k.toml"
    file.write_text(text.replace('"data.flip" = true\n', '"data.flip" = true\n"model.width" = 64\n', 1))
    rows = differences(load_study(str(file), "full"))
    assert [(r["key"], r["ours"], r["published"]) for r in rows] == [("model.width", 32, 64)]


def test_every_study_states_its_documents_settings_and_full_is_them():
    from latentds.studies import load_study, study_names
    from latentds.studies.differs import differences

    for name in study_names():
        study = load_study(name, "full")
        assert study.published or any(run.published for run in study.runs), name
        assert differences(study) == [], name


def test_a_finding_is_blocked_only_by_the_gates_it_needs():
    """A VAE with a tiny KL weight reconstructs well but draws poor samples: a claim about its reconstructions
    stands, a claim that needs its samples is not measured."""
    from latentds.studies.results import _finding

    class Study:
        @staticmethod
        def runs_matching(pattern):
            return [type("Run", (), {"name": "a"})()]

    metrics = {s: {"metrics": {"pcc": 0.9 + 0.01 * s, "pcc_se": 0.001}} for s in range(3)}
    other = {s: {"metrics": {"pcc": 0.8 + 0.01 * s, "pcc_se": 0.001}} for s in range(3)}
    health = {"a": {"trained": False, "failed": ["sample_diversity"]}, "b": {"trained": True, "failed": []}}
    spec = {"claim": "c", "runs": "a", "left": "metrics.pcc", "op": ">", "right": "metrics.pcc", "right_run": "b",
            "source": "literature", "reference": "r"}
    recon = _finding(Study, spec | {"gates": ["reconstruction", "decoder_sensitivity"]}, {"a": metrics, "b": other},
                     health)
    assert recon["verdict"] == "confirmed"
    samples = _finding(Study, spec, {"a": metrics, "b": other}, health)  # every gate
    assert samples["verdict"] == "not measured (not trained: a (sample_diversity))"


def test_a_finding_names_only_known_gates(tmp_path):
    from latentds.errors import InvalidParameterError
    from latentds.studies import load_study

    text = (Path(__file__).parents[1] / "src/latentds/studies/packaged/kl-weight.toml").read_text()
    file = tmp_path / "k.toml"
    file.write_text(text.replace('gates = ["reconstruction"', 'gates = ["reconstrution"', 1))
    with pytest.raises(InvalidParameterError, match="unknown gate 'reconstrution'"):
        load_study(str(file), "cpu")


def test_the_ranking_against_published_values_leaves_out_runs_that_did_not_train():
    from latentds.studies.report import _agreement_lines

    rows = [_row(str(i), float(i), float(p)) for i, p in enumerate([1, 2, 3, 4])]
    table = {**_table(rows), "title": "FID", "not_comparable": None}
    trained = " ".join(_agreement_lines({"tables": [table]}))
    assert "over 4 rows = 1.00" in trained and "did not train" not in trained
    for row in rows[:2]:
        row["trained"] = False
    two_left = " ".join(_agreement_lines({"tables": [table]}))
    assert "2 of 4 rows come from runs that did not train" in two_left
    assert "not measured: fewer than 3 rows to rank" in two_left and "Spearman" not in two_left
    rows[1]["trained"] = None  # unknown (no health probe): kept
    assert "over 3 rows" in " ".join(_agreement_lines({"tables": [table]}))


def test_a_designs_effects_leave_out_runs_that_did_not_train():
    """disc-strategies' FID table (strategy x schedule): an untrained run's value says nothing about its strategy,
    so the effects are measured without it, and with no trained run they are not measured at all."""
    from latentds.studies.report import _table_lines
    from latentds.studies.results import _table
    from latentds.studies.study import load_study

    study = load_study("disc-strategies", "smoke")
    spec = next(t for t in study.tables if t.get("rows"))
    design = study.runs_matching(spec["runs"])
    # every strategy scores 10 but "both", which scores 20 (30 under the step schedule), on three seeds
    runs = {r.name: {s: {"fid": {"samples": {"fid": (20.0 + 10 * (r.axes["train.schedule"] == "step")
                                                      if r.axes["model.update_strategy"] == "both" else 10.0) + s}}}
                     for s in range(3)} for r in design}
    both = [r.name for r in design if r.axes["model.update_strategy"] == "both"]
    trained = {r.name: {"trained": True} for r in design}
    effects = _table(study, spec, runs, trained)["effects"]["model.update_strategy"]
    assert {e["level"]: round(e["effect"], 6) for e in effects}["both"] == 11.25  # 25 - mean(10, 10, 10, 25)
    untrained = {**trained, **{name: {"trained": False} for name in both}}
    table = _table(study, spec, runs, untrained)
    effects = {e["level"]: e for e in table["effects"]["model.update_strategy"]}
    assert "both" not in effects and effects["inferior"]["effect"] == pytest.approx(0.0)
    text = " ".join(_table_lines(table))
    assert "Left out, not trained: " + ", ".join(sorted(both)) in text
    none = _table(study, spec, runs, {r.name: {"trained": False} for r in design})
    text = " ".join(_table_lines(none))
    assert "Effect of `model.update_strategy`: not measured (no run of the design trained)" in text
    assert "paired by the other factor" not in text


def test_a_run_whose_samples_alone_failed_is_named_so(tmp_path):
    """kl-weight's runs reconstruct well (PCC 0.975) and fail only the samples' gates: "samples not trained", in
    the health table and beside their values, not plain "not trained"."""
    from latentds.studies.report import _health_lines, _table_lines
    from latentds.studies.results import status

    vae = ["sample_colour", "sample_diversity", "reconstruction", "colour"]
    assert status([]) == "trained" and status(["sample_colour", "sample_diversity"], vae) == "samples not trained"
    assert status(["sample_colour", "colour"], vae) == "not trained"
    assert status(["sample_colour"], ["sample_colour", "sample_diversity", "discriminator"]) == "not trained"  # GAN
    from latentds.analysis.health import gate
    from latentds.studies.results import run_health

    seeds = {"a": {0: {"health": {"gates": {"sample_colour": gate("sample_colour", 0.02),
                                            "reconstruction": gate("reconstruction", 0.2)}}}},
             "b": {0: {"health": {"gates": {"colour": gate("colour", 1.1),
                                            "reconstruction": gate("reconstruction", 0.2)}}}}}
    health = {name: run_health(per_seed, tmp_path, name) for name, per_seed in seeds.items()}
    text = "\n".join(_health_lines({"health": health}))
    assert "| a | 1 | **samples not trained** |" in text and "| b | 1 | **not trained** |" in text
    rows = [{**_row(name, 0.9, None), "run": name, "ours": None, "trained": False, "floors": {},
             "status": health[name]["status"]} for name in "ab"]
    text = "\n".join(_table_lines({**_table(rows, None), "title": "PCC", "metric": "metrics.pcc", "note": ""}))
    assert "| a (samples not trained) |" in text and "| b (not trained) |" in text
