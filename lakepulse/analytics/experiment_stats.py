"""The statistics behind `mart_experiment_results`, written to be read by analysts.

Every test here works from sufficient statistics (n, sum, sum of squares, and for CUPED the
pre-exposure covariate's sums), so the warehouse aggregates in SQL and only a handful of numbers
per variation reach Python. The formulas follow GrowthBook's `gbstats` so that results can be
checked against its published reference values (see `tests/unit/test_experiment_stats.py`).

Notation: arm A is the control, arm B a treatment. For a metric with per-user values y:

    mean      = sum / n
    variance  = (sum_sq - sum^2 / n) / (n - 1)        (a proportion: p (1 - p))

    absolute lift   d = mean_B - mean_A
    relative lift   r = (mean_B - mean_A) / mean_A
    Var(d) = var_A / n_A + var_B / n_B
    Var(r) = var_B / (n_B mean_A^2) + var_A mean_B^2 / (n_A mean_A^4)     (delta method)

Fixed horizon (valid only if you look once, at the planned end): Welch's t with
Welch-Satterthwaite degrees of freedom.

Always valid (valid however often you look): the normal-mixture confidence sequence of
Waudby-Smith et al. (arXiv 2103.06476, eq. 9 and 161), with N = n_A + n_B, the tuning N*
(the total sample size at which the sequence should be tightest) and

    rho^2     = (-2 ln(alpha) + ln(-2 ln(alpha) + 1)) / N*
    s^2       = Var(estimate) * N
    halfwidth = sqrt(s^2) * sqrt( 2 (N rho^2 + 1) / (N^2 rho^2) * ln( sqrt(N rho^2 + 1) / alpha ) )

Its always-valid p-value is the smallest alpha whose sequence excludes zero (rho held at its
design value): p = min(1, sqrt(N rho^2 + 1) * exp(-N rho^2 est^2 / (2 Var(est) (N rho^2 + 1)))),
the inverse of the mixture likelihood ratio of Johari et al.'s mSPRT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# scipy.special, not scipy.stats: the same distribution functions for a third of the import
# time, which every minute's dbt run pays (fct_experiment_snapshots imports this module).
from scipy import special as _special


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of one arm for one metric."""

    n: int
    sum: float
    sum_sq: float
    proportion: bool = False

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        if self.proportion:
            return self.mean * (1 - self.mean)
        if self.n < 2:
            return math.nan
        return max((self.sum_sq - self.sum**2 / self.n) / (self.n - 1), 0.0)


@dataclass(frozen=True)
class Adjusted:
    """An arm's metric after CUPED: the post-exposure moments adjusted by theta times the
    pre-exposure covariate. `unadjusted_mean` stays the denominator of relative lift."""

    mean: float
    variance: float
    n: int
    unadjusted_mean: float


@dataclass(frozen=True)
class Estimate:
    """A lift, its variance, and its intervals; `relative` says which kind of lift."""

    lift: float
    variance: float
    ci_low: float
    ci_high: float
    p_value: float
    sequential_ci_low: float
    sequential_ci_high: float
    sequential_p_value: float


def lift(control: Moments | Adjusted, treatment: Moments | Adjusted, relative: bool) -> float:
    base = _unadjusted(control)
    if relative:
        return (treatment.mean - control.mean) / base if base else math.nan
    return treatment.mean - control.mean


def lift_variance(
    control: Moments | Adjusted, treatment: Moments | Adjusted, relative: bool
) -> float:
    var_a, n_a, mean_a = control.variance, control.n, _unadjusted(control)
    var_b, n_b, mean_b = treatment.variance, treatment.n, _unadjusted(treatment)
    if not relative:
        return var_a / n_a + var_b / n_b
    if not mean_a:
        return math.nan
    return var_b / (n_b * mean_a**2) + var_a * mean_b**2 / (n_a * mean_a**4)


def welch_dof(control: Moments | Adjusted, treatment: Moments | Adjusted) -> float:
    a = control.variance / control.n
    b = treatment.variance / treatment.n
    denominator = a**2 / (control.n - 1) + b**2 / (treatment.n - 1)
    return (a + b) ** 2 / denominator if denominator else math.inf


def sequential_rho(alpha: float, n_star: float) -> float:
    """The mixing parameter that makes the confidence sequence tightest at N* observations."""
    return math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / n_star)


def sequential_halfwidth(variance: float, n: int, n_star: float, alpha: float) -> float:
    rho2 = sequential_rho(alpha, n_star) ** 2
    s2 = variance * n
    return math.sqrt(s2) * math.sqrt(
        2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    )


def sequential_p_value(
    estimate: float, variance: float, n: int, n_star: float, alpha: float
) -> float:
    rho2 = sequential_rho(alpha, n_star) ** 2
    if variance <= 0:
        return 1.0 if estimate == 0 else 0.0
    exponent = -n * rho2 * estimate**2 / (2 * variance * (n * rho2 + 1))
    return min(1.0, math.sqrt(n * rho2 + 1) * math.exp(exponent))


def compare(
    control: Moments | Adjusted,
    treatment: Moments | Adjusted,
    *,
    relative: bool,
    alpha: float = 0.05,
    n_star: float = 5000,
) -> Estimate | None:
    """Treatment against control; None when the data cannot support a test yet (fewer than
    two users in an arm, no variance, or a zero control mean for a relative lift)."""
    if min(control.n, treatment.n) < 2:
        return None
    estimate = lift(control, treatment, relative)
    variance = lift_variance(control, treatment, relative)
    if not math.isfinite(estimate) or not math.isfinite(variance) or variance <= 0:
        return None
    se = math.sqrt(variance)
    dof = welch_dof(control, treatment)
    t_crit = float(_special.stdtrit(dof, 1 - alpha / 2))
    p_value = float(2 * _special.stdtr(dof, -abs(estimate) / se))
    n = control.n + treatment.n
    halfwidth = sequential_halfwidth(variance, n, n_star, alpha)
    return Estimate(
        lift=estimate,
        variance=variance,
        ci_low=estimate - t_crit * se,
        ci_high=estimate + t_crit * se,
        p_value=p_value,
        sequential_ci_low=estimate - halfwidth,
        sequential_ci_high=estimate + halfwidth,
        sequential_p_value=sequential_p_value(estimate, variance, n, n_star, alpha),
    )


def covariance(n: int, sum_x: float, sum_y: float, sum_xy: float) -> float:
    return (sum_xy - sum_x * sum_y / n) / (n - 1) if n > 1 else 0.0


def cuped_theta(post: Sequence[Moments], pre: Sequence[Moments], sum_xy: Sequence[float]) -> float:
    """theta = Cov(post, pre) / Var(pre), pooled across all arms: one theta for the whole
    experiment keeps the adjustment from depending on the treatment."""
    n = sum(m.n for m in post)
    pooled_post = Moments(n, sum(m.sum for m in post), sum(m.sum_sq for m in post))
    pooled_pre = Moments(n, sum(m.sum for m in pre), sum(m.sum_sq for m in pre))
    if n < 2 or not pooled_pre.variance or not pooled_post.variance:
        return 0.0
    return covariance(n, pooled_post.sum, pooled_pre.sum, sum(sum_xy)) / pooled_pre.variance


def cuped_adjust(post: Moments, pre: Moments, sum_xy: float, theta: float) -> Adjusted:
    """Y - theta X per arm: same expectation difference, less variance when X predicts Y."""
    cov = covariance(post.n, post.sum, pre.sum, sum_xy)
    return Adjusted(
        mean=post.mean - theta * pre.mean,
        variance=post.variance + theta**2 * pre.variance - 2 * theta * cov,
        n=post.n,
        unadjusted_mean=post.mean,
    )


def srm_p_value(counts: Sequence[int], weights: Sequence[float]) -> float:
    """Pearson's chi-square goodness of fit of the users per variation against the planned
    split (k - 1 degrees of freedom). Below 0.001 the assignment itself is broken."""
    total = sum(counts)
    weight_total = sum(weights)
    if total == 0 or len(counts) < 2:
        return 1.0
    expected = [total * w / weight_total for w in weights]
    statistic = sum((c - e) ** 2 / e for c, e in zip(counts, expected, strict=True) if e > 0)
    return float(_special.chdtrc(len(counts) - 1, statistic))


SRM_THRESHOLD = 0.001


def decide(srm_p: float, sequential_ci_low: float | None, sequential_ci_high: float | None) -> str:
    """The rule, in order: a broken split invalidates everything (`invalid: SRM`); otherwise a
    confidence sequence wholly above zero is `ship`, wholly below zero is `stop`, and one that
    still straddles zero (or no estimate yet) is `continue`. Because the sequence is always
    valid, acting on the first minute it excludes zero keeps the error rate at alpha."""
    if srm_p < SRM_THRESHOLD:
        return "invalid: SRM"
    if sequential_ci_low is None or sequential_ci_high is None:
        return "continue"
    if sequential_ci_low > 0:
        return "ship"
    if sequential_ci_high < 0:
        return "stop"
    return "continue"


def _unadjusted(arm: Moments | Adjusted) -> float:
    return arm.unadjusted_mean if isinstance(arm, Adjusted) else arm.mean
