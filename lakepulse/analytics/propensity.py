"""Purchase propensity: the probability that a visitor orders within 24 hours of a session's
start, learnt per tenant from its past sessions with scikit-learn.

- **Examples** are sessions with the visitor's behaviour in them (:data:`NUMERIC`,
  :data:`CATEGORICAL`) and the label :data:`LABEL`: an order in ``[start, start + 24 h)``.
  A session is labelled only once its 24 hours are over (:func:`labelled`).
- **Accuracy** is measured on a time-based holdout, the last day of labelled sessions, by a
  model trained only on the sessions before it (:func:`time_split`): AUC and a calibration curve
  over 10 equal-count bins of the predicted probability (:func:`calibration_curve`).
- The model that scores live sessions is then trained on every labelled session
  (:func:`fit_tenant`), like the customer-lifetime models.

The learner is scikit-learn's ``HistGradientBoostingClassifier`` (log-loss, fixed
hyper-parameters, no early stopping, fixed seed): deterministic, calibrated enough to read as a
probability, and able to use the interactions (cart value only matters with an item in the
cart) that a linear model would need to be given by hand.

Pure functions: pandas in, numbers and fitted estimators out; no warehouse, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NUMERIC = [
    "page_views",
    "product_views",
    "cart_adds",
    "cart_value",
    "duration_s",
    "returning_visitor",
    "past_orders",
]
"""Numeric features of a session: its page and product views, products added and the cart's
value, its length, whether the visitor had visited before (0/1), and her orders before it.
The customer's CLV is not among them: today's CLV of a past session's visitor counts the
orders that session's label is about (a point-in-time CLV would be needed)."""

CATEGORICAL = ["channel", "device_class"]
"""Categorical features: the session's acquisition channel and device class."""

LABEL = "ordered_24h"
START = "session_start_at"
HORIZON = pd.Timedelta(hours=24)
HOLDOUT = pd.Timedelta(days=1)
BINS = 10
MIN_EXAMPLES = 200
"""Fewer labelled training sessions (or fewer than 10 positive and 10 negative): no model."""


class PropensityError(ValueError):
    """Too little data to train or to measure."""


def label_sessions(sessions: pd.DataFrame, orders: pd.DataFrame) -> pd.Series:
    """1 when the session's visitor (``user_key``) has an order (``ordered_at``) in
    ``[session_start_at, session_start_at + 24 h)``, else 0 (index of ``sessions``)."""
    left = sessions[["user_key", START]].reset_index(names="_row")
    merged = left.merge(orders[["user_key", "ordered_at"]], on="user_key", how="inner")
    hit = (merged["ordered_at"] >= merged[START]) & (merged["ordered_at"] < merged[START] + HORIZON)
    positive = set(merged.loc[hit, "_row"])
    return pd.Series([int(row in positive) for row in left["_row"]], index=sessions.index)


def labelled(sessions: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """The sessions whose 24-hour window has closed by ``now``."""
    return sessions[sessions[START] + HORIZON <= now]


def time_split(examples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): the holdout is the last day of the labelled sessions (by start); the
    training set is every session that started before it."""
    cutoff = examples[START].max() - HOLDOUT
    return examples[examples[START] <= cutoff], examples[examples[START] > cutoff]


def _check(frame: pd.DataFrame, what: str) -> None:
    positives = int(frame[LABEL].sum())
    if len(frame) < MIN_EXAMPLES or positives < 10 or len(frame) - positives < 10:
        raise PropensityError(
            f"{what}: {len(frame)} sessions, {positives} with an order; need at least "
            f"{MIN_EXAMPLES} sessions and 10 of each outcome"
        )


def train(examples: pd.DataFrame):
    """A fitted scikit-learn pipeline (one-hot categories, then gradient boosting)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    _check(examples, "training set")
    features = ColumnTransformer(
        [
            ("numeric", "passthrough", NUMERIC),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                CATEGORICAL,
            ),
        ]
    )
    model = Pipeline(
        [
            ("features", features),
            (
                "boosting",
                HistGradientBoostingClassifier(
                    learning_rate=0.05,
                    max_iter=200,
                    max_leaf_nodes=15,
                    min_samples_leaf=40,
                    l2_regularization=1.0,
                    early_stopping=False,
                    random_state=0,
                ),
            ),
        ]
    )
    return model.fit(_features(examples), examples[LABEL].to_numpy(dtype=int))


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[NUMERIC].astype(float).fillna(0.0)
    for column in CATEGORICAL:
        out[column] = frame[column].astype(str).fillna("unknown")
    return out


def signature() -> dict:
    """What a kept model was trained on (features, scikit-learn version): a model whose
    signature differs from the running code's is not used to score (a release that changed
    the features waits for the next fit instead of failing the build)."""
    import sklearn

    return {"features": [*NUMERIC, *CATEGORICAL], "sklearn": sklearn.__version__}


def score(model, sessions: pd.DataFrame) -> np.ndarray:
    """P(order within 24 h) for each session."""
    if sessions.empty:
        return np.array([], dtype=float)
    return model.predict_proba(_features(sessions))[:, 1]


def auc(labels, predicted) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(labels, dtype=int), np.asarray(predicted, dtype=float)))


def calibration_curve(labels, predicted, bins: int = BINS) -> list[dict]:
    """Predicted against observed rate in ``bins`` equal-count bins of the predicted
    probability (sorted; ties keep their order): per bin its number (1 = lowest), the range
    of predictions, their mean, the observed rate and the number of sessions."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(predicted, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = []
    for number, chunk in enumerate(np.array_split(order, bins), start=1):
        if len(chunk) == 0:
            continue
        rows.append(
            {
                "bin": number,
                "predicted_low": float(p[chunk].min()),
                "predicted_high": float(p[chunk].max()),
                "predicted_rate": float(p[chunk].mean()),
                "observed_rate": float(y[chunk].mean()),
                "sessions": len(chunk),
            }
        )
    return rows


@dataclass(frozen=True)
class Accuracy:
    """A model trained before the holdout day, measured on it."""

    train_sessions: int
    holdout_sessions: int
    holdout_orders: int
    auc: float
    base_rate: float
    """Share of holdout sessions followed by an order within 24 h."""
    calibration: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class TenantPropensity:
    model: object
    """Trained on every labelled session: scores live sessions."""
    accuracy: Accuracy
    holdout_predictions: np.ndarray
    """The holdout model's predictions on the holdout sessions (in their order)."""


def fit_tenant(sessions: pd.DataFrame, now: pd.Timestamp) -> TenantPropensity:
    """Measure on the last labelled day, then retrain on everything labelled. ``sessions``
    carries the features, ``session_start_at`` and :data:`LABEL`. Raises
    :class:`PropensityError` with too little data."""
    examples = labelled(sessions, now)
    before, holdout = time_split(examples)
    _check(holdout, "holdout day")
    measured = train(before)
    predicted = score(measured, holdout)
    labels = holdout[LABEL].to_numpy(dtype=int)
    accuracy = Accuracy(
        train_sessions=len(before),
        holdout_sessions=len(holdout),
        holdout_orders=int(labels.sum()),
        auc=auc(labels, predicted),
        base_rate=float(labels.mean()),
        calibration=calibration_curve(labels, predicted),
    )
    return TenantPropensity(train(examples), accuracy, predicted)
