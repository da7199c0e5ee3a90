"""The statistics behind study verdicts: intervals with seed spread and probe error, paired comparisons, verdicts
that need 3 seeds, rank tests with a permutation p-value, a design's effects."""

import math

import pytest

from latentds.studies import stats


def seeds(*values, se=None):
    return {s: (v, se) for s, v in enumerate(values)}


def test_a_summary_holds_the_seed_spread_and_the_probes_sampling_error():
    plain = stats.summary(seeds(1.0, 1.2, 1.4))
    assert plain["mean"] == pytest.approx(1.2) and plain["std"] == pytest.approx(0.2) and plain["n"] == 3
    half = plain["ci"][1] - plain["mean"]
    assert half == pytest.approx(stats.t95(2) * 0.2 / math.sqrt(3))  # t with 2 degrees of freedom: 4.30
    noisy = stats.summary(seeds(1.0, 1.2, 1.4, se=0.3))
    assert noisy["ci"][1] - noisy["ci"][0] > plain["ci"][1] - plain["ci"][0]  # the probe's error widens it
    one = stats.summary(seeds(1.0, se=0.1))
    assert one["ci"] == pytest.approx([1.0 - 1.96 * 0.1, 1.0 + 1.96 * 0.1], abs=1e-3)
    assert stats.summary({0: (None, None), 1: (float("nan"), None)}) is None


def test_a_difference_counts_only_beyond_its_interval():
    holds = stats.compare(seeds(0.80, 0.82, 0.81), seeds(0.90, 0.91, 0.92), "<", 0.01)
    assert holds["outcome"] == "holds" and holds["paired"] and holds["difference"] == pytest.approx(0.1)
    fails = stats.compare(seeds(0.95, 0.96, 0.97), seeds(0.90, 0.91, 0.92), "<", 0.01)
    assert fails["outcome"] == "fails"
    # the same means, but the seeds disagree: the interval spans zero
    spread = stats.compare(seeds(0.70, 0.95, 0.83), seeds(0.90, 0.80, 0.98), "<", 0.01)
    assert spread["outcome"] == "within noise"
    # a clear mean difference whose probe error is large: within noise (the audit's R^2 gap of 0.012, se 0.02-0.03)
    probe = stats.compare(seeds(0.512, 0.512, 0.512, se=0.025), seeds(0.5, 0.5, 0.5, se=0.025), ">", 0.01)
    assert probe["outcome"] == "within noise"
    # smaller than min_effect of the right-hand value: within noise however tight
    tiny = stats.compare(seeds(1.001, 1.001, 1.001), seeds(1.0, 1.0, 1.0), ">", 0.01)
    assert tiny["outcome"] == "within noise"


def test_pairing_by_seed_removes_what_the_seeds_share():
    # each seed moves both runs together: unpaired the spread hides the difference, paired it does not
    left, right = seeds(0.5, 0.7, 0.9), seeds(0.55, 0.75, 0.95)
    assert stats.compare(left, right, "<", 0.01)["outcome"] == "holds"
    unpaired = stats.compare(left, {s + 10: v for s, v in right.items()}, "<", 0.01)
    assert not unpaired["paired"] and unpaired["outcome"] == "within noise"


@pytest.mark.parametrize("outcomes,n,expected", [
    (["holds"], 3, "confirmed"), (["fails", "fails"], 3, "contradicted"),
    (["within noise"], 5, "no measurable difference"), (["holds", "fails"], 3, "mixed"),
    (["holds"], 1, "indicative (1 seed): holds"), (["fails"], 2, "indicative (2 seeds): fails"),
    ([], 3, "not measured")])
def test_a_verdict_needs_three_seeds(outcomes, n, expected):
    assert stats.verdict(outcomes, n) == expected


@pytest.mark.slow
def test_rank_correlation_comes_with_its_permutation_p_value():
    perfect = stats.spearman_permutation([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8])
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["p_value"] == pytest.approx(1 / 40320)
    assert perfect["exact"]
    # over 8 rows rho must reach about 0.64 for one-sided 5% (Spearman's tables): below, the ranking shows nothing
    import random

    rng = random.Random(0)
    tested = []
    for _ in range(20):
        order = list(range(1, 9))
        rng.shuffle(order)
        tested.append(stats.spearman_permutation(list(range(1, 9)), order))
    for t in tested:
        if t["spearman"] <= 0.62:
            assert t["p_value"] > 0.05
        if t["spearman"] >= 0.65:
            assert t["p_value"] < 0.05
    assert stats.spearman_permutation(list(range(1, 9)), [2, 1, 4, 3, 6, 5, 8, 7])["p_value"] < 0.05  # rho 0.90
    assert stats.spearman_permutation(list(range(1, 9)), [3, 1, 2, 8, 4, 7, 5, 6])["p_value"] > 0.05  # rho 0.62
    none = stats.spearman_permutation([1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1])
    assert none["p_value"] == pytest.approx(1.0)


def test_a_two_factor_table_reports_each_factors_effect_with_an_interval():
    cells = {}
    for row, base in (("a", 10.0), ("b", 20.0), ("c", 30.0)):
        for column, shift in (("constant", 0.0), ("step", -5.0)):
            cells[(row, column)] = {s: (base + shift + 0.1 * s, None) for s in range(3)}
    columns = {e["level"]: e for e in stats.effects(cells, "columns")}
    assert columns["step"]["effect"] == pytest.approx(-2.5) and columns["constant"]["effect"] == pytest.approx(2.5)
    assert columns["step"]["ci"][1] < 0 < columns["constant"]["ci"][0]
    rows = {e["level"]: e for e in stats.effects(cells, "rows")}
    assert rows["a"]["effect"] == pytest.approx(-10.0) and rows["c"]["effect"] == pytest.approx(10.0)


def test_a_claim_against_a_fixed_number_reads_the_left_hand_interval():
    above = stats.compare(seeds(0.05, 0.06, 0.07, se=0.001), {s: (0.0, None) for s in range(3)}, ">", 0.01)
    assert above["outcome"] == "holds" and above["difference"] == pytest.approx(0.06)
    spans = stats.compare(seeds(-0.02, 0.01, 0.04), {s: (0.0, None) for s in range(3)}, ">", 0.01)
    assert spans["outcome"] == "within noise"
