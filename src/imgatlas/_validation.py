"""scikit-learn's validation, raising imgatlas' own errors."""

from __future__ import annotations

from typing import Any

from sklearn.exceptions import NotFittedError as SklearnNotFitted
from sklearn.utils.validation import check_is_fitted as _sk_check_is_fitted

from imgatlas.errors import NotFittedError


def check_is_fitted(estimator: Any) -> None:
    try:
        _sk_check_is_fitted(estimator)
    except SklearnNotFitted:
        raise NotFittedError(
            f"This {type(estimator).__name__} is not fitted yet; call 'fit' first."
        ) from None
