"""The experiment statistics against GrowthBook's published reference values (gbstats' own
unit tests), and a seeded simulation of an experiment watched every minute."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from lakepulse.analytics.experiment_stats import (
    Moments,
    compare,
    cuped_adjust,
    cuped_theta,
    decide,
    srm_p_value,
)

CONTROL = Moments(3000, 1396.87, 52377.9767)
TREATMENT = Moments(3461, 2422.7, 134698.29)


def rounded(*values: float) -> tuple[float, ...]:
    return tuple(round(v, 5) for v in values)


def test_sequential_means_absolute_matches_growthbook():
    result = compare(CONTROL, TREATMENT, relative=False, n_star=1000)
    assert rounded(result.lift) == (0.23438,)
    assert rounded(result.sequential_ci_low, result.sequential_ci_high) == (-0.17909, 0.64784)


def test_sequential_means_relative_matches_growthbook():
    result = compare(CONTROL, TREATMENT, relative=True, n_star=1000)
    assert rounded(result.lift) == (0.50336,)
    assert rounded(result.sequential_ci_low, result.sequential_ci_high) == (-0.55844, 1.56516)
    assert rounded(math.sqrt(result.variance)) == (0.33341,)


def test_sequential_proportions_match_growthbook():
    result = compare(
        Moments(3000, 1396, 1396, proportion=True),
        Moments(3461, 2422, 2422, proportion=True),
        relative=True,
    )  # GrowthBook's default N* = 5000
    assert rounded(result.lift, result.sequential_ci_low, result.sequential_ci_high) == (
        0.50386,
        0.40098,
        0.60675,
    )
    assert rounded(math.sqrt(result.variance)) == (0.03386,)


def test_sequential_cuped_matches_growthbook():
    control = cuped_adjust(CONTROL, Moments(3000, 16.87, 527.9767), 12525, theta=0.5)
    treatment = cuped_adjust(TREATMENT, Moments(3461, 22.7, 1348.29), 3333, theta=0.5)
    result = compare(control, treatment, relative=True)
    assert rounded(result.lift, result.sequential_ci_low, result.sequential_ci_high) == (
        0.50236,
        -0.43745,
        1.44217,
    )
    assert rounded(math.sqrt(result.variance)) == (0.3093,)


def test_fixed_horizon_welch_matches_growthbook():
    control = Moments(3407, 1396.87, 52377.9767)
    relative = compare(control, TREATMENT, relative=True)
    assert rounded(relative.lift, relative.ci_low, relative.ci_high, relative.p_value) == (
        0.70732,
        -0.03526,
        1.44989,
        0.06191,
    )
    absolute = compare(control, TREATMENT, relative=False)
    assert rounded(absolute.ci_low, absolute.ci_high, absolute.p_value) == (
        0.04538,
        0.53462,
        0.02016,
    )
    assert rounded(math.sqrt(absolute.variance)) == (0.12478,)


def test_fixed_horizon_proportions_match_growthbook():
    result = compare(
        Moments(28, 14, 14, proportion=True), Moments(30, 16, 16, proportion=True), relative=True
    )
    assert rounded(result.lift, result.ci_low, result.ci_high, result.p_value) == (
        0.06667,
        -0.47767,
        0.61101,
        0.80707,
    )


def test_sequential_interval_is_tightest_near_the_tuned_sample_size():
    width = {}
    for n_star in (10, 6461, 10_000):
        r = compare(CONTROL, TREATMENT, relative=True, n_star=n_star)
        width[n_star] = r.sequential_ci_high - r.sequential_ci_low
    assert width[6461] < width[10_000] < width[10]


def test_always_valid_p_value_is_the_alpha_at_which_the_sequence_touches_zero():
    control = Moments(3000, 300, 300, proportion=True)
    treatment = Moments(3000, 360, 360, proportion=True)
    result = compare(control, treatment, relative=False)
    # Worked out by hand: lift 0.02, variance 0.09/3000 + 0.1056/3000 = 6.52e-5, n = 6000,
    # rho^2 = (-2 ln 0.05 + ln(1 - 2 ln 0.05)) / 5000; the p at which the half-width equals
    # the lift is sqrt(n rho^2 + 1) exp(-lift^2 n rho^2 / (2 variance (n rho^2 + 1))).
    assert round(result.sequential_p_value, 5) == 0.20206
    assert result.variance == pytest.approx(6.52e-5)


def test_srm_is_pearsons_chi_square_against_the_planned_split():
    assert srm_p_value([70, 30], [0.5, 0.5]) == pytest.approx(scipy_stats.chi2.sf(16.0, 1))
    assert srm_p_value([5012, 4988], [1, 1]) > 0.5
    assert srm_p_value([900, 100, 1000], [0.45, 0.05, 0.5]) == pytest.approx(
        scipy_stats.chisquare([900, 100, 1000], [900, 100, 1000]).pvalue
    )
    assert srm_p_value([5000, 6000], [1, 1]) < 0.001


def test_cuped_theta_is_pooled_and_removes_the_covariates_noise():
    rng = np.random.default_rng(3)
    arms = []
    for effect in (0.0, 1.0):
        x = rng.gamma(2.0, 10.0, 4000)
        y = 0.8 * x + rng.normal(0, 5, 4000) + effect
        arms.append(
            (
                Moments(4000, y.sum(), (y * y).sum()),
                Moments(4000, x.sum(), (x * x).sum()),
                (x * y).sum(),
            )
        )
    theta = cuped_theta([a[0] for a in arms], [a[1] for a in arms], [a[2] for a in arms])
    assert theta == pytest.approx(0.8, abs=0.03)
    plain = compare(arms[0][0], arms[1][0], relative=False)
    adjusted = compare(cuped_adjust(*arms[0], theta), cuped_adjust(*arms[1], theta), relative=False)
    assert adjusted.variance < 0.25 * plain.variance
    assert adjusted.ci_low < 1.0 < adjusted.ci_high


def test_decision_rule():
    assert decide(0.0001, 0.1, 0.2) == "invalid: SRM"
    assert decide(0.5, 0.1, 0.2) == "ship"
    assert decide(0.5, -0.2, -0.1) == "stop"
    assert decide(0.5, -0.1, 0.2) == "continue"
    assert decide(0.5, None, None) == "continue"


def test_no_estimate_without_two_users_per_arm():
    assert compare(Moments(1, 1, 1), Moments(10, 5, 5), relative=False) is None


def watched_every_minute(
    rng, minutes: int, users_per_minute: int, p_control: float, p_treatment: float
):
    """Cumulative conversions of both arms after each simulated minute; the fixed test and
    the sequential test are both checked at every minute, as a dashboard would be."""
    conv_a = np.cumsum(rng.binomial(users_per_minute, p_control, minutes))
    conv_b = np.cumsum(rng.binomial(users_per_minute, p_treatment, minutes))
    fixed_fired = sequential_fired = False
    for minute in range(minutes):
        n = users_per_minute * (minute + 1)
        result = compare(
            Moments(n, conv_a[minute], conv_a[minute], proportion=True),
            Moments(n, conv_b[minute], conv_b[minute], proportion=True),
            relative=False,
            n_star=2 * users_per_minute * minutes,
        )
        if result is None:
            continue
        fixed_fired |= result.p_value < 0.05
        sequential_fired |= result.sequential_p_value < 0.05
    return fixed_fired, sequential_fired


def test_peeking_every_minute_inflates_the_fixed_test_but_not_the_sequential_one():
    rng = np.random.default_rng(20261122)
    runs = [watched_every_minute(rng, 60, 50, 0.1, 0.1) for _ in range(300)]
    fixed_rate = sum(f for f, _ in runs) / len(runs)
    sequential_rate = sum(s for _, s in runs) / len(runs)
    assert sequential_rate <= 0.05
    assert fixed_rate >= 0.15  # three times alpha and more: the peeking problem


def test_a_planted_effect_is_detected_while_watching():
    rng = np.random.default_rng(7)
    runs = [watched_every_minute(rng, 60, 50, 0.10, 0.14) for _ in range(40)]
    assert sum(s for _, s in runs) / len(runs) >= 0.8
