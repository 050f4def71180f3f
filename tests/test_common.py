"""scikit-learn's own estimator checks on every clusterer, reducer, classifier head and the
sketch index's line->photo map.

The checks that do not apply are listed with the reason (``expected_failed_checks``): the
contract they test is not this estimator's, by design; they are not defects hidden.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from imgatlas.classify import LogisticHead, MLPHead
from imgatlas.cluster import (
    Agglomerative,
    DBSCANClusterer,
    GMMClusterer,
    HDBSCANClusterer,
    KMeansClusterer,
    KMedoidsClusterer,
    SCANClusterer,
    TURTLEClusterer,
)
from imgatlas.reduce import KNNSmoother, L2Normalizer, PCAReducer, UMAPReducer
from imgatlas.sketch import LineToPhotoMap

TRANSDUCTIVE = ("fit_transform returns the fitted collection's embedding; transform places "
                "new points against it, so the two differ on the same data by design")
EXPECTED = {
    "KNNSmoother": {
        "check_transformer_general": TRANSDUCTIVE,
        "check_transformer_general(readonly_memmap=True)": TRANSDUCTIVE,
        "check_transformer_data_not_an_array": TRANSDUCTIVE,
    },
    "UMAPReducer": {
        "check_methods_sample_order_invariance": "UMAP.transform depends on the order of the "
                                                 "batch (its optimisation is stochastic)",
        "check_methods_subset_invariance": "UMAP.transform of a batch optimises the batch "
                                           "jointly",
    },
}


def _expected(est):
    return EXPECTED.get(type(est).__name__, {})


ESTIMATORS = [
    KMeansClusterer(3, n_init=2), GMMClusterer(3), DBSCANClusterer(), HDBSCANClusterer(),
    Agglomerative(3), SCANClusterer(3, epochs=2, n_heads=2, min_steps=0),
    TURTLEClusterer(3, n_iter=5),
    L2Normalizer(), PCAReducer(2), KNNSmoother(3), UMAPReducer(2),
    LogisticHead(), MLPHead(), LineToPhotoMap(),
]
try:
    import kmedoids  # noqa: F401

    ESTIMATORS.append(KMedoidsClusterer(3))
except ImportError:  # the GPL extra is optional; its estimator is checked where installed
    pass
try:
    import torch  # noqa: F401
except ImportError:  # SCAN and TURTLE fit with PyTorch (the 'train' extra)
    ESTIMATORS = [e for e in ESTIMATORS
                  if not isinstance(e, SCANClusterer | TURTLEClusterer)]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_every_registered_clusterer_is_checked():
    from imgatlas.cluster import CLUSTERERS

    checked = {type(e).__name__ for e in ESTIMATORS}
    built = {type(CLUSTERERS[m].factory(3 if CLUSTERERS[m].takes_k else None, 0)).__name__
             for m in CLUSTERERS.names()}
    missing = built - checked - {"KMedoidsClusterer", "SCANClusterer", "TURTLEClusterer"}
    assert not missing, missing
    pytest.importorskip("kmedoids")
