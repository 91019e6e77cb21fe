"""Customer lifetime value and churn risk: BG/NBD and Gamma-Gamma, fitted by maximum likelihood.

The models are the standard buy-till-you-die pair:

- **BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive, a
  customer buys at a Poisson rate ``lambda ~ Gamma(r, alpha)``; after each repeat purchase she
  drops out for good with probability ``p ~ Beta(a, b)``.
- **Gamma-Gamma** (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"): the spend of
  one occasion is ``Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)``, independent of the purchase
  process.

Conventions (the papers' and the usual RFM summaries'):

- a **purchase occasion** is a customer's day with at least one order: two orders on one day
  are one occasion, their revenue summed (:func:`daily_occasions`);
- time is in **days**; ``frequency`` is the number of repeat occasions (the first is not
  counted), ``recency`` the days from the first occasion to the last, ``T`` the days from the
  first occasion to the end of observation (:func:`rfm_summary`);
- Gamma-Gamma's monetary value is the mean spend of the **repeat** occasions, the first
  excluded, as in the paper.

The likelihoods are the ``lifetimes`` library's (0.11.3); :func:`fit` minimises them with
SciPy exactly as ``lifetimes`` does (same start, BFGS on log parameters, time scaled so the
oldest customer's ``T`` is 1), but accepts SciPy's "precision loss" stop when the gradient is
already ~0: ``lifetimes``' own ``fit`` raises ``ConvergenceError`` there, which happened on
about one simulated dataset in three for Gamma-Gamma (at the optimum). Predictions use
``lifetimes``' closed forms.

Pure functions: pandas in, pandas or dataclasses out; no warehouse, no clock.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd

HORIZON_DAYS = 90
"""Horizon of ``expected_orders_90d`` and ``clv_90d``."""

HOLDOUT_DAYS = 30
"""The holdout: the last 30 days, predicted by a fit made without them."""

MIN_CUSTOMERS = 20
"""Fewer customers than this: no fit (four parameters need data)."""

MIN_REPEAT_CUSTOMERS = 10
"""Fewer customers with a repeat occasion than this: no Gamma-Gamma fit (no order values)."""

CHURN_RISK_LOW = 0.7
CHURN_RISK_HIGH = 0.3
"""``churn_risk`` from ``p_alive``: ``low`` at or above 0.7, ``high`` below 0.3, ``medium``
between; ``one_time`` for customers without a repeat occasion, whom BG/NBD holds alive by
construction (it lets a customer drop out only after a repeat purchase)."""

NEXT_ORDER_MAX_DAYS = 365
"""``predicted_next_order_date`` is left null when it is more than a year away."""

CUSTOMER = "customer_id"
ORDER_DATE = "order_date"
REVENUE = "revenue"


# --- the summary ------------------------------------------------------------------------------


def daily_occasions(orders: pd.DataFrame) -> pd.DataFrame:
    """One row per customer and day with an order: ``customer_id``, ``order_date`` (a
    ``datetime64`` day), ``orders`` and ``revenue`` (summed). ``orders`` needs the columns
    ``customer_id``, ``order_date`` (date or timestamp: its day is taken) and ``revenue``
    (null counts as 0)."""
    # A timestamp counts on its UTC day; a naive date or timestamp is taken as UTC already.
    days = pd.to_datetime(orders[ORDER_DATE], utc=True).dt.tz_localize(None)
    frame = pd.DataFrame(
        {
            CUSTOMER: orders[CUSTOMER].astype(str),
            ORDER_DATE: days.dt.normalize(),
            REVENUE: pd.to_numeric(orders[REVENUE]).fillna(0.0).astype(float),
        }
    )
    return (
        frame.groupby([CUSTOMER, ORDER_DATE], sort=True)
        .agg(orders=(REVENUE, "size"), revenue=(REVENUE, "sum"))
        .reset_index()
    )


def rfm_summary(orders: pd.DataFrame, observation_end: date) -> pd.DataFrame:
    """Per customer with an order on or before ``observation_end`` (later orders are ignored),
    indexed by ``customer_id`` and sorted: ``frequency`` (repeat occasions), ``recency`` and
    ``T`` (days), ``monetary_value`` (mean revenue of the repeat occasions; 0 without one),
    ``first_order_date`` and ``last_order_date``."""
    end = pd.Timestamp(observation_end).normalize()
    occasions = daily_occasions(orders)
    occasions = occasions[occasions[ORDER_DATE] <= end]
    columns = ["frequency", "recency", "T", "monetary_value", "first_order_date", "last_order_date"]
    if occasions.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name=CUSTOMER))
    by_customer = occasions.groupby(CUSTOMER, sort=True)
    first = by_customer[ORDER_DATE].min()
    last = by_customer[ORDER_DATE].max()
    frequency = by_customer.size() - 1
    # Occasions are sorted by (customer, day): the first row of each customer is her first day.
    first_spend = by_customer[REVENUE].first()
    repeat_spend = by_customer[REVENUE].sum() - first_spend
    day = pd.Timedelta(days=1)
    summary = pd.DataFrame(
        {
            "frequency": frequency.astype(int),
            "recency": (last - first) / day,
            "T": (end - first) / day,
            "monetary_value": (repeat_spend / frequency.where(frequency > 0)).fillna(0.0),
            "first_order_date": first,
            "last_order_date": last,
        }
    )
    summary.index.name = CUSTOMER
    return summary[columns]


# --- the fit ----------------------------------------------------------------------------------


DIVERGED_LOG = 15.0
"""A log-parameter beyond +-15 (a parameter above 3e6 or below 3e-7) has run off to a boundary."""


class FitError(ValueError):
    """The data cannot support a fit (too few customers) or the optimiser did not converge."""


@dataclass(frozen=True)
class ClvFit:
    """Maximum-likelihood parameters, time in days. The Gamma-Gamma ones are ``None`` when
    fewer than :data:`MIN_REPEAT_CUSTOMERS` customers have a repeat occasion."""

    customers: int
    repeat_customers: int
    r: float
    alpha: float
    a: float
    b: float
    p: float | None
    q: float | None
    gamma: float | None
    log_likelihood: float
    """BG/NBD log-likelihood of the data at the estimate, time in days (the papers' value in
    weeks is this plus ``sum(frequency) * ln 7``)."""
    gg_log_likelihood: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def _minimize(negative_log_likelihood, args: tuple, size: int) -> np.ndarray:
    """``lifetimes``' optimisation (BFGS on log parameters from 0.1, autograd's exact
    gradient), accepting a "precision loss" stop at a point whose gradient is ~0."""
    from autograd import value_and_grad
    from scipy.optimize import minimize

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = minimize(
            value_and_grad(negative_log_likelihood),
            x0=np.full(size, 0.1),
            jac=True,
            tol=1e-7,
            args=args,
        )
    if np.all(np.isfinite(result.x)) and np.max(np.abs(result.x)) > DIVERGED_LOG:
        raise FitError(
            "the likelihood has no maximum at finite parameters (some run off to 0 or "
            "infinity): the customers look too much alike, or the history is too short, "
            "to tell their differences apart"
        )
    if not result.success:
        gradient = float(np.max(np.abs(result.jac))) if result.jac is not None else math.inf
        if result.status != 2 or not np.all(np.isfinite(result.x)) or gradient > 1e-4:
            raise FitError(f"maximum likelihood did not converge: {result.message}")
    return result.x


def fit_bgnbd(summary: pd.DataFrame) -> tuple[float, float, float, float, float]:
    """BG/NBD by maximum likelihood: ``(r, alpha, a, b, log_likelihood)``, time in days."""
    from lifetimes import BetaGeoFitter

    if len(summary) < MIN_CUSTOMERS:
        raise FitError(f"{len(summary)} customers; a fit needs at least {MIN_CUSTOMERS}")
    frequency = summary["frequency"].to_numpy(dtype=int)
    recency = summary["recency"].to_numpy(dtype=float)
    age = summary["T"].to_numpy(dtype=float)
    if age.max() <= 0:
        raise FitError("every customer's first order is on the last day: no time observed")
    weights = np.ones(len(summary))
    scale = 1.0 / age.max()  # as lifetimes: the optimiser sees T in (0, 1]
    log_params = _minimize(
        BetaGeoFitter._negative_log_likelihood,
        (frequency, recency * scale, age * scale, weights, 0.0),
        4,
    )
    r, alpha, a, b = np.exp(log_params)
    alpha /= scale
    nll = BetaGeoFitter._negative_log_likelihood(
        np.log([r, alpha, a, b]), frequency, recency, age, weights, 0.0
    )
    return float(r), float(alpha), float(a), float(b), float(-nll * len(summary))


def fit_gamma_gamma(summary: pd.DataFrame) -> tuple[float, float, float, float] | None:
    """Gamma-Gamma by maximum likelihood on the customers with a repeat occasion and a
    positive mean spend: ``(p, q, gamma, log_likelihood)``, or ``None`` with too few."""
    from lifetimes import GammaGammaFitter

    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    if len(repeat) < MIN_REPEAT_CUSTOMERS:
        return None
    frequency = repeat["frequency"].to_numpy(dtype=float)
    monetary = repeat["monetary_value"].to_numpy(dtype=float)
    weights = np.ones(len(repeat))
    log_params = _minimize(
        GammaGammaFitter._negative_log_likelihood, (frequency, monetary, weights, 0.0), 3
    )
    nll = GammaGammaFitter._negative_log_likelihood(log_params, frequency, monetary, weights, 0.0)
    p, q, gamma = np.exp(log_params)
    return float(p), float(q), float(gamma), float(-nll * len(repeat))


def fit(summary: pd.DataFrame) -> ClvFit:
    """Both models on one :func:`rfm_summary`. Raises :class:`FitError`."""
    r, alpha, a, b, log_likelihood = fit_bgnbd(summary)
    monetary = fit_gamma_gamma(summary)
    p, q, gamma, gg_log_likelihood = monetary if monetary else (None, None, None, None)
    return ClvFit(
        customers=len(summary),
        repeat_customers=int((summary["frequency"] > 0).sum()),
        r=r,
        alpha=alpha,
        a=a,
        b=b,
        p=p,
        q=q,
        gamma=gamma,
        log_likelihood=log_likelihood,
        gg_log_likelihood=gg_log_likelihood,
    )


# --- predictions ------------------------------------------------------------------------------


def _bgnbd(model) -> object:
    from lifetimes import BetaGeoFitter

    fitter = BetaGeoFitter()
    fitter.params_ = pd.Series(
        {"r": model["r"], "alpha": model["alpha"], "a": model["a"], "b": model["b"]}
    )
    return fitter


def expected_repeat_orders(summary: pd.DataFrame, model, days: float) -> np.ndarray:
    """Each customer's expected repeat occasions in the next ``days`` (BG/NBD, eq. 10)."""
    with np.errstate(all="ignore"):
        return np.asarray(
            _bgnbd(model).conditional_expected_number_of_purchases_up_to_time(
                days,
                summary["frequency"].to_numpy(dtype=float),
                summary["recency"].to_numpy(dtype=float),
                summary["T"].to_numpy(dtype=float),
            ),
            dtype=float,
        )


def predict(
    summary: pd.DataFrame, model, observation_end: date, horizon_days: int = HORIZON_DAYS
) -> pd.DataFrame:
    """Per customer of ``summary`` (same index), from ``model`` (a :class:`ClvFit` as a dict,
    or any mapping with r, alpha, a, b, p, q, gamma):

    - ``p_alive``: probability she has not dropped out (Fader, Hardie & Lee 2008 note);
    - ``expected_orders_90d``: expected purchase occasions in the next ``horizon_days``;
    - ``p_order_90d``: probability of at least one occasion in that horizon;
    - ``expected_order_value``: Gamma-Gamma's conditional mean spend of an occasion
      (null without a Gamma-Gamma fit);
    - ``clv_90d``: ``expected_orders_90d * expected_order_value`` (revenue, undiscounted);
    - ``churn_risk``: ``one_time`` / ``low`` / ``medium`` / ``high`` (see :data:`CHURN_RISK_LOW`);
    - ``predicted_next_order_date``: the day by which she more likely than not has ordered
      again, ``P(alive) * (1 - ((alpha+T)/(alpha+T+t))^(r+x)) = 1/2`` (the rate of an alive
      customer is Gamma(r+x, alpha+T) a posteriori); null when ``p_alive <= 1/2`` or when
      that day is more than :data:`NEXT_ORDER_MAX_DAYS` away."""
    if isinstance(model, ClvFit):
        model = model.as_dict()
    x = summary["frequency"].to_numpy(dtype=float)
    recency = summary["recency"].to_numpy(dtype=float)
    age = summary["T"].to_numpy(dtype=float)
    fitter = _bgnbd(model)
    r, alpha = model["r"], model["alpha"]
    with np.errstate(all="ignore"):
        p_alive = np.asarray(fitter.conditional_probability_alive(x, recency, age), dtype=float)
        expected = expected_repeat_orders(summary, model, horizon_days)
        no_order = ((alpha + age) / (alpha + age + horizon_days)) ** (r + x)
        p_order = p_alive * (1.0 - no_order)
        days_to_next = (alpha + age) * ((1.0 - 0.5 / p_alive) ** (-1.0 / (r + x)) - 1.0)
        days_to_next = np.where(
            (p_alive > 0.5) & (days_to_next <= NEXT_ORDER_MAX_DAYS), days_to_next, np.nan
        )
    if model.get("p") is not None:
        from lifetimes import GammaGammaFitter

        spend = GammaGammaFitter()
        spend.params_ = pd.Series({"p": model["p"], "q": model["q"], "v": model["gamma"]})
        value = np.asarray(
            spend.conditional_expected_average_profit(
                summary["frequency"].to_numpy(dtype=float),
                summary["monetary_value"].to_numpy(dtype=float),
            ),
            dtype=float,
        )
    else:
        value = np.full(len(summary), np.nan)
    risk = np.where(
        x == 0,
        "one_time",
        np.where(
            p_alive >= CHURN_RISK_LOW, "low", np.where(p_alive < CHURN_RISK_HIGH, "high", "medium")
        ),
    )
    end = pd.Timestamp(observation_end).normalize()
    next_date = end + pd.to_timedelta(np.ceil(days_to_next), unit="D")
    return pd.DataFrame(
        {
            "p_alive": p_alive,
            "expected_orders_90d": expected,
            "p_order_90d": p_order,
            "expected_order_value": value,
            "clv_90d": expected * value,
            "churn_risk": risk,
            "predicted_next_order_date": next_date,
        },
        index=summary.index,
    )


# --- holdout accuracy -------------------------------------------------------------------------


@dataclass(frozen=True)
class Holdout:
    """A calibration fit without the last ``days`` against what happened in them, over the
    customers who had ordered before them (as in the paper's calibration/holdout split)."""

    days: int
    customers: int
    predicted_orders: float
    """Sum over customers of the expected repeat occasions in the holdout."""
    actual_orders: int
    """Their actual purchase occasions in the holdout."""
    mae: float
    """Mean absolute error per customer (occasions)."""
    ratio: float | None
    """predicted_orders / actual_orders (1 is right in aggregate); null without an order."""

    def as_dict(self) -> dict:
        return asdict(self)


def holdout_accuracy(
    orders: pd.DataFrame, observation_end: date, days: int = HOLDOUT_DAYS
) -> Holdout:
    """Fit BG/NBD on the orders up to ``observation_end - days`` and compare its expected
    repeat occasions per customer over the next ``days`` with the actual ones. Raises
    :class:`FitError` when the calibration period cannot be fitted."""
    end = pd.Timestamp(observation_end).normalize()
    cutoff = end - pd.Timedelta(days=days)
    calibration = rfm_summary(orders, cutoff)
    r, alpha, a, b, _ = fit_bgnbd(calibration)
    predicted = expected_repeat_orders(calibration, {"r": r, "alpha": alpha, "a": a, "b": b}, days)
    occasions = daily_occasions(orders)
    later = occasions[(occasions[ORDER_DATE] > cutoff) & (occasions[ORDER_DATE] <= end)]
    actual = (
        later.groupby(CUSTOMER).size().reindex(calibration.index, fill_value=0).to_numpy(dtype=int)
    )
    total = int(actual.sum())
    return Holdout(
        days=days,
        customers=len(calibration),
        predicted_orders=float(predicted.sum()),
        actual_orders=total,
        mae=float(np.mean(np.abs(predicted - actual))),
        ratio=float(predicted.sum() / total) if total else None,
    )


# --- per tenant -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantModel:
    """One tenant's fit on all its data and the holdout check of a fit made without the last
    :data:`HOLDOUT_DAYS` (``None`` when that shorter period cannot be fitted)."""

    observation_end: date
    fit: ClvFit
    holdout: Holdout | None


def fit_tenant(orders: pd.DataFrame, observation_end: date) -> TenantModel:
    """Fit one tenant's orders (``customer_id``, ``order_date``, ``revenue``) observed up to
    ``observation_end``. Raises :class:`FitError` when the data cannot support a fit."""
    model = fit(rfm_summary(orders, observation_end))
    try:
        holdout = holdout_accuracy(orders, observation_end)
    except FitError:
        holdout = None
    return TenantModel(pd.Timestamp(observation_end).date(), model, holdout)


PREDICTION_COLUMNS = [
    "tenant_id",
    "user_key",
    "fitted_at",
    "observation_end",
    "first_order_date",
    "last_order_date",
    "frequency",
    "recency_days",
    "age_days",
    "monetary_value",
    "p_alive",
    "expected_orders_90d",
    "p_order_90d",
    "expected_order_value",
    "clv_90d",
    "churn_risk",
    "predicted_next_order_date",
]


def predict_tenants(
    orders: pd.DataFrame, clocks: pd.DataFrame, models: pd.DataFrame
) -> pd.DataFrame:
    """Every customer's predictions (:data:`PREDICTION_COLUMNS`), for each tenant with a model.

    ``orders``: ``tenant_id``, ``user_key``, ``order_date``, ``revenue``; ``clocks``:
    ``tenant_id``, ``observation_end`` (the tenant's today); ``models``: rows of fits
    (``tenant_id``, ``fitted_at`` and the parameters), the latest per tenant is used. A
    customer's history is summarised as of her tenant's ``observation_end``, so a new order
    moves her figures at once, while the parameters change only with the next fit."""
    frames = []
    if models.empty or orders.empty:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    latest = models.sort_values(["tenant_id", "fitted_at"]).groupby("tenant_id").tail(1)
    ends = dict(zip(clocks["tenant_id"], clocks["observation_end"], strict=True))
    for model in latest.to_dict("records"):
        tenant = model["tenant_id"]
        if tenant not in ends or pd.isna(ends[tenant]):
            continue
        end = pd.Timestamp(ends[tenant]).date()
        tenant_orders = orders[orders["tenant_id"] == tenant].rename(columns={"user_key": CUSTOMER})
        summary = rfm_summary(tenant_orders, end)
        if summary.empty:
            continue
        model = {k: (None if _missing(v) else v) for k, v in model.items()}
        predicted = predict(summary, model, end)
        frame = pd.concat([summary, predicted], axis=1).reset_index()
        frame = frame.rename(
            columns={CUSTOMER: "user_key", "recency": "recency_days", "T": "age_days"}
        )
        frame["tenant_id"] = tenant
        frame["fitted_at"] = model["fitted_at"]
        frame["observation_end"] = pd.Timestamp(end)
        frames.append(frame[PREDICTION_COLUMNS])
    if not frames:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _missing(value) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
