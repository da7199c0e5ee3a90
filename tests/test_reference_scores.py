"""``scores()`` against an independent implementation of disentanglement_lib's MIG, DCI and SAP.

The reference below is written from google-research/disentanglement_lib (evaluation/metrics/mig.py, dci.py,
sap_score.py and utils.py) in its own layout -- arrays are (num_codes, num_points), factors are used as the discrete
values they are, every estimator is scikit-learn's with the library's arguments and no random_state -- and shares
no code with latentds. The synthetic codes have known answers: a copy of the factors (disentangled: every score
high), a rotation mixing every factor into every latent (entangled: DCI and MIG low) and independent noise (every
score near 0). DCI runs at the reference's 100 boosting rounds, so the data are kept small.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import sklearn
from sklearn import ensemble, svm
from sklearn.metrics import mutual_info_score

import latentds
from latentds.analysis.disentanglement import scores
from latentds.errors import InvalidParameterError

pytestmark = pytest.mark.slow  # every test here fits the reference implementation's scores

N = 600  # points; scores() trains DCI and SAP on a seeded 80 % of them, as the reference does on its train set
VALUES = (3, 4, 2)  # discrete factors and their number of values, as in dSprites-like data


# --- the reference, after disentanglement_lib -------------------------------------------------------------------
def ref_histogram_discretize(target, num_bins=20):
    """utils._histogram_discretize: (num_codes, num_points) -> bin indices."""
    discretized = np.zeros_like(target)
    for i in range(target.shape[0]):
        discretized[i, :] = np.digitize(target[i, :], np.histogram(target[i, :], num_bins)[1][:-1])
    return discretized


def ref_discrete_mutual_info(mus, ys):
    """utils.discrete_mutual_info: (num_codes, num_factors) mutual information."""
    m = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            m[i, j] = mutual_info_score(ys[j, :], mus[i, :])
    return m


def ref_discrete_entropy(ys):
    """utils.discrete_entropy."""
    return np.array([mutual_info_score(ys[j, :], ys[j, :]) for j in range(ys.shape[0])])


def ref_mig(mus_train, ys_train):
    """mig._compute_mig."""
    m = ref_discrete_mutual_info(ref_histogram_discretize(mus_train), ys_train)
    entropy = ref_discrete_entropy(ys_train)
    sorted_m = np.sort(m, axis=0)[::-1]
    return np.mean(np.divide(sorted_m[0, :] - sorted_m[1, :], entropy[:]))


def ref_dci(mus_train, ys_train, mus_test, ys_test):
    """dci._compute_dci: (disentanglement, completeness, informativeness_test)."""
    num_factors, num_codes = ys_train.shape[0], mus_train.shape[0]
    importance_matrix = np.zeros(shape=[num_codes, num_factors], dtype=np.float64)
    test_loss = []
    for i in range(num_factors):
        model = ensemble.GradientBoostingClassifier()
        model.fit(mus_train.T, ys_train[i, :])
        importance_matrix[:, i] = np.abs(model.feature_importances_)
        test_loss.append(np.mean(model.predict(mus_test.T) == ys_test[i, :]))

    per_code = 1. - scipy.stats.entropy(importance_matrix.T + 1e-11, base=importance_matrix.shape[1])
    code_importance = importance_matrix.sum(axis=1) / importance_matrix.sum()
    disentanglement = np.sum(per_code * code_importance)
    per_factor = 1. - scipy.stats.entropy(importance_matrix + 1e-11, base=importance_matrix.shape[0])
    factor_importance = importance_matrix.sum(axis=0) / importance_matrix.sum()
    completeness = np.sum(per_factor * factor_importance)
    return disentanglement, completeness, np.mean(test_loss)


def ref_sap(mus, ys, mus_test, ys_test):
    """sap_score._compute_sap with continuous_factors=False."""
    score_matrix = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            classifier = svm.LinearSVC(C=0.01, class_weight="balanced")
            classifier.fit(mus[i, :][:, np.newaxis], ys[j, :])
            pred = classifier.predict(mus_test[i, :][:, np.newaxis])
            score_matrix[i, j] = np.mean(pred == ys_test[j, :])
    sorted_matrix = np.sort(score_matrix, axis=0)
    return np.mean(sorted_matrix[-1, :] - sorted_matrix[-2, :])


def reference_scores(latents, factors, seed=0, train_fraction=0.8):
    """The reference on (N, D) latents and (N, K) discrete factors, on the split scores() documents: a
    numpy.random.default_rng(seed) permutation, the first int(N * train_fraction) rows for training."""
    order = np.random.default_rng(seed).permutation(len(latents))
    n_train = int(len(latents) * train_fraction)
    train, test = order[:n_train], order[n_train:]
    mus, ys = latents.T, factors.T
    d, c, i = ref_dci(mus[:, train], ys[:, train], mus[:, test], ys[:, test])
    return {"mig": ref_mig(mus, ys), "dci_disentanglement": d, "dci_completeness": c, "dci_informativeness": i,
            "sap": ref_sap(mus[:, train], ys[:, train], mus[:, test], ys[:, test])}


# --- synthetic codes with known answers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def factors():
    rng = np.random.default_rng(11)
    return np.column_stack([rng.integers(0, v, N) for v in VALUES]).astype(float)


def _codes(factors):
    rng = np.random.default_rng(12)
    standardised = (factors - factors.mean(axis=0)) / factors.std(axis=0)
    k = factors.shape[1]
    # an orthogonal matrix that puts every factor into every latent with weights of 1/3 or 2/3 of the variance
    mixing = np.full((k, k), 2 / 3) - np.eye(k)
    assert np.allclose(mixing @ mixing.T, np.eye(k))
    return {
        "disentangled": np.column_stack([standardised + 0.01 * rng.normal(size=standardised.shape),
                                         rng.normal(size=N)]),  # plus one nuisance latent
        "rotated": np.column_stack([standardised @ mixing, rng.normal(size=N)]),
        "random": rng.normal(size=(N, k + 1)),
    }


@pytest.fixture(scope="module")
def results(factors):
    """{code: (scores(), reference)} for each synthetic code."""
    return {name: (scores(latents, factors), reference_scores(latents, factors))
            for name, latents in _codes(factors).items()}


@pytest.mark.parametrize("code", ["disentangled", "rotated", "random"])
def test_scores_agree_with_the_reference_implementation(results, code):
    ours, ref = results[code]
    assert ours["mig"] == pytest.approx(ref["mig"], abs=1e-6)  # the same estimator on the same data
    for key in ("dci_disentanglement", "dci_completeness", "dci_informativeness"):
        assert ours[key] == pytest.approx(ref[key], abs=0.02), key  # same split; only tie-breaking differs
    assert ours["sap"] == pytest.approx(ref["sap"], abs=0.03)  # liblinear's coordinate descent is randomised
    assert ours["settings"]["mode"] == "reference" and ours["settings"]["reference_estimators"]


def test_known_answers(results):
    disentangled, rotated, random = (results[name][0] for name in ("disentangled", "rotated", "random"))
    assert disentangled["mig"] > 0.9 and disentangled["dci_disentanglement"] > 0.9
    assert disentangled["dci_completeness"] > 0.9 and disentangled["dci_informativeness"] > 0.99
    assert disentangled["sap"] > 0.2
    for key in ("mig", "dci_disentanglement", "dci_completeness", "sap"):
        assert disentangled[key] > rotated[key] + 0.2, key
        assert random[key] < 0.15, key
    assert rotated["dci_disentanglement"] < 0.5 and rotated["mig"] < 0.4
    chance = np.mean([1 / v for v in VALUES])
    assert abs(random["dci_informativeness"] - chance) < 0.1


def test_fast_mode_is_named_and_inflates_dci_on_an_entangled_code(factors, results):
    fast = scores(_codes(factors)["rotated"], factors, mode="fast")
    reference = results["rotated"][0]
    assert fast["settings"]["mode"] == "fast" and not fast["settings"]["reference_estimators"]
    assert fast["settings"]["dci"]["n_estimators"] == 10 and reference["settings"]["dci"]["n_estimators"] == 100
    assert "not comparable" in fast["settings"]["note"]
    assert fast["mig"] == reference["mig"]  # only DCI changes
    assert fast["dci_disentanglement"] > reference["dci_disentanglement"]


def test_settings_record_the_library_versions(results):
    settings = results["disentangled"][0]["settings"]
    assert settings["versions"]["scikit-learn"] == sklearn.__version__
    assert settings["versions"]["numpy"] == np.__version__
    assert settings["versions"]["latentds"] == latentds.__version__
    assert settings["dci"]["max_features"].startswith("all latents")


def test_parallel_and_serial_dci_agree(factors):
    latents = _codes(factors)["rotated"][:300]
    serial = scores(latents, factors[:300], mode="fast", n_jobs=1)
    parallel = scores(latents, factors[:300], mode="fast", n_jobs=2)
    for key in ("dci_disentanglement", "dci_completeness", "dci_informativeness"):
        assert serial[key] == parallel[key]


@pytest.mark.parametrize("kwargs, message", [({"mode": "paper"}, "mode"), ({"dci_max_features": "all"}, "max_feat")])
def test_bad_mode_raises(factors, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        scores(np.zeros((N, 3)), factors, **kwargs)
