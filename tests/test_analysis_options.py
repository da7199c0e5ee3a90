"""The analysis options: one frozen object read by one strict ``from_dict`` from the CLI's flags, a study's
``analyze`` table and ``run``'s keywords; every mistake answered before anything is encoded."""

import dataclasses
import textwrap

import pytest
import torch
from click.testing import CliRunner

import latentds.analysis.encode as encode
from latentds.analysis.options import AnalysisOptions, FactorVAEOptions
from latentds.analysis.runner import run
from latentds.cli import main
from latentds.errors import InvalidParameterError, UnknownNameError
from latentds.render import RenderSpec, render_shards
from latentds.studies.study import analysis_options, load_study
from latentds.zoo.base import create


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("options")
    render_shards(RenderSpec("varied", n=48, size=16, shard_size=48, seed=5), base / "data", workers=1,
                  progress=False)
    torch.manual_seed(0)
    model = create("vae", image_size=16, width=8, latent_dim=4).eval()
    model.save_pretrained(base / "model")
    return base, model


@pytest.fixture
def no_encoding(monkeypatch):
    """Encoding fails the test: the options must be refused before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("encoded before the options were checked")

    monkeypatch.setattr(encode, "encode_dataset", refuse)


def _study(tmp_path, analyze: str):
    file = tmp_path / "tiny.toml"
    file.write_text(textwrap.dedent(f'''
        description = "options test"
        [data.tiny]
        preset = "varied"
        n = 48
        size = 16
        shard_size = 48
        [[run]]
        name = "vae"
        recipe = "zoo/vae"
        data = "tiny"
        analyze = {{{analyze}}}
    '''), encoding="utf-8")
    return str(file)


def test_options_are_frozen_and_checked_when_built():
    options = AnalysisOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.n = 10  # type: ignore[misc]
    with pytest.raises(InvalidParameterError, match="^n must be at least 2 \\(got 1\\)$"):
        AnalysisOptions(n=1)
    assert AnalysisOptions.from_dict({"dims": [0, 3], "probes": ["pca"]}) == AnalysisOptions(dims=(0, 3),
                                                                                              probes=("pca",))


@pytest.mark.parametrize(("values", "error", "message"), [
    ({"prboes": ["pca"]}, UnknownNameError, r"unknown analysis option 'prboes' \(did you mean 'probes'\?\)"),
    ({"probes": ["pca", "umpa"]}, UnknownNameError, r"probes: unknown probe 'umpa' \(did you mean 'umap'\?\)"),
    ({"n": 1}, InvalidParameterError, r"n must be at least 2 \(got 1\)"),
    ({"n": "many"}, InvalidParameterError, r"n must be int, not 'many'"),
    ({"dims": [1]}, InvalidParameterError, r"dims must be a list of 2"),
    ({"scores_mode": "slow"}, InvalidParameterError, r"scores_mode must be one of 'reference', 'fast'"),
    ({"groups": ["a=1"]}, InvalidParameterError, r"groups takes two selections"),
    ({"factorvae": {"vote": "quick"}}, InvalidParameterError, r"unknown key 'vote' .*\(did you mean 'votes'\?\)"),
    ({"factorvae": {"n_train": 0}}, InvalidParameterError, r"factorvae.n_train must be at least 1"),
])
def test_run_refuses_bad_options_before_encoding(tiny, tmp_path, no_encoding, values, error, message):
    base, model = tiny
    with pytest.raises(error, match=message):
        run(model, base / "data", tmp_path / "out", progress=False, **values)
    assert not (tmp_path / "out").exists()  # nothing written either


def test_dims_outside_the_latent_are_refused_before_encoding(tiny, tmp_path, no_encoding):
    base, model = tiny
    with pytest.raises(InvalidParameterError, match=r"--dims \[0, 4\]: the latent has 4 dimensions"):
        run(model, base / "data", tmp_path / "out", probes=["umap"], dims=(0, 4), progress=False)
    result = CliRunner().invoke(main, ["analyze", str(base / "model"), "--data", str(base / "data"), "--out",
                                       str(tmp_path / "cli"), "--probes", "umap", "--dims", "0", "9", "--quiet"])
    assert result.exit_code == 2 and "--dims [0, 9]: the latent has 4 dimensions" in result.stderr
    assert not (tmp_path / "cli").exists()


def test_the_cli_names_its_flags_in_errors(tiny, tmp_path):
    base, _ = tiny
    result = CliRunner().invoke(main, ["analyze", str(base / "model"), "--data", str(base / "data"), "--out",
                                       str(tmp_path / "o"), "--n", "1"])
    assert result.exit_code == 2 and "Error: --n must be at least 2 (got 1)" in result.stderr


def test_a_study_table_is_read_strictly_when_the_study_loads(tmp_path):
    with pytest.raises(UnknownNameError, match=r"study .*tiny.toml run vae analyze: unknown analysis option "
                                               r"'prboes' \(did you mean 'probes'\?\)"):
        load_study(_study(tmp_path, 'prboes = ["pca"]'), "smoke")
    with pytest.raises(UnknownNameError, match=r"did you mean 'feature_run'"):  # a study key beside the options
        load_study(_study(tmp_path, 'feature_rn = "x"'), "smoke")
    with pytest.raises(InvalidParameterError, match=r"run vae analyze: scores_mode|analyze.scores_mode must be"):
        load_study(_study(tmp_path, 'scores_mode = "slow"'), "smoke")
    with pytest.raises(UnknownNameError, match=r"run vae analyze: probes: unknown probe 'umpa'"):
        load_study(_study(tmp_path, 'probes = ["umpa"]'), "smoke")
    with pytest.raises(UnknownNameError, match=r"run vae analyze.feature_run: unknown run 'vea' \(did you mean "
                                               r"'vae'\?\)"):  # not after every run has trained
        load_study(_study(tmp_path, 'feature_run = "vea"'), "smoke")


def test_cli_flags_and_a_study_table_give_equal_options(tiny, tmp_path, monkeypatch):
    import latentds.analysis.runner as runner
    import latentds.zoo.base as base_module

    base, model = tiny
    seen = []
    monkeypatch.setattr(runner, "run", lambda model, data, out, options, **kwargs: seen.append(options) or
                        {"skipped": {}})
    monkeypatch.setattr(base_module, "load_pretrained", lambda name: model)
    result = CliRunner().invoke(main, [
        "analyze", "m", "--data", "d", "--out", str(tmp_path / "o"), "--probes", "pca,scores", "--n", "64",
        "--scores-mode", "fast", "--dims", "0", "3", "--colour-by", "phi_0", "--groups", "n_cuboids=4",
        "n_cuboids=2", "--inception-weights", __file__, "--quiet"])
    assert result.exit_code == 0, result.output
    study = load_study(_study(tmp_path, f'probes = ["pca", "scores"], n = 64, scores_mode = "fast", dims = [0, 3], '
                                        f'colour_by = "phi_0", groups = ["n_cuboids=4", "n_cuboids=2"], '
                                        f'inception_weights = {__file__!r}, data = "tiny"'), "smoke")
    assert seen == [analysis_options(study.runs[0].analyze)]
    assert seen[0].scores_mode == "fast" and seen[0].dims == (0, 3)
    # and the defaults: a bare CLI call and a study table that says only n
    seen.clear()
    assert CliRunner().invoke(main, ["analyze", "m", "--data", "d", "--out", str(tmp_path / "p"), "--n", "1000",
                                     "--quiet"]).exit_code == 0
    assert seen == [analysis_options(load_study(_study(tmp_path, ""), "smoke").runs[0].analyze)]


@pytest.mark.slow
def test_a_study_table_setting_scores_mode_reaches_the_probe(tiny, tmp_path):
    from latentds.studies.runner import analyze_run

    base, model = tiny
    study = load_study(_study(tmp_path, 'probes = ["scores"], n = 48, scores_mode = "fast"'), "smoke")
    (run_,) = study.runs
    run_dir = tmp_path / "runs" / "vae" / "seed-0"
    metrics = analyze_run(run_, model, run_dir, tmp_path, {run_.analyze["data"]: str(base / "data")}, False)
    assert metrics["scores"]["settings"]["mode"] == "fast"  # the probe ran in the study's mode
    assert list(metrics)[:2] == ["health", "scores"]  # health first, as in every study analysis


def test_factorvae_vote_settings_agree_with_the_score():
    from latentds.analysis.factorvae_cuboids import VOTES
    from latentds.analysis.options import VOTES as OPTION_VOTES

    assert tuple(VOTES) == OPTION_VOTES
    assert FactorVAEOptions(votes="reference", n_train=12).given() == {"votes": "reference", "n_train": 12}
