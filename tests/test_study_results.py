"""results.md's comparisons: values only where they are on the published scale, else the ranking; findings
count a difference only beyond the noise."""

import pytest

from latentds.studies.results import _compare, comparable, rank_agreement


def _row(name, ours, published, network="e2e_cnn@abc"):
    return {"row": name, "column": "", "ours": {"mean": ours, "std": 0.0, "n": 1}, "published": published,
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


@pytest.mark.parametrize("left,right,op,std,expected", [
    (0.90, 1.00, "<", 0.0, "yes"),
    (1.10, 1.00, "<", 0.0, "no"),
    (0.995, 1.00, "<", 0.0, "within noise"),    # 0.5% < the 1% default
    (0.90, 1.00, "<", 0.06, "within noise"),    # 10% apart, but 2 standard deviations over seeds are 12%
    (1.20, 1.00, ">", 0.0, "yes"),
])
def test_findings_count_a_difference_only_beyond_the_noise(left, right, op, std, expected):
    outcome = _compare({"mean": left, "std": std}, {"mean": right, "std": 0.0}, op, 0.01)
    assert outcome == expected
