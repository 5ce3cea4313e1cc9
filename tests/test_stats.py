"""Statistics behind A/B decisions: known answers, parity with scipy and statsmodels,
calibration over fixed seeds, and properties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from codi_eval.analysis import (
    bootstrap_ci,
    compare_many,
    holm,
    icc,
    krippendorff_alpha,
    mean_ci,
    minimum_detectable_effect,
    paired_comparison,
    paired_t_power,
    required_n,
    spearman,
    t_quantile,
)

NAN = math.nan
FAST = {"n_boot": 200, "n_perm": 1000}


def binomial_tolerance(p: float, trials: int, z: float = 3.5) -> float:
    """Half-width within which a rejection/coverage rate should fall (z standard errors)."""
    return z * math.sqrt(p * (1 - p) / trials)


def paired_rows(diffs: np.ndarray) -> tuple[list[float], list[float]]:
    """Cells a = 0 and b = diffs, one repeat per item: item i differs by diffs[i]."""
    return [0.0] * len(diffs), [float(d) for d in diffs]


def brute_force_sign_flip_p(diffs: np.ndarray, delta: float = 0.0) -> float:
    """Every sign vector, counted directly: P(|sum s (d - delta)| >= |sum (d - delta)|)."""
    d = np.asarray(diffs, dtype=np.float64) - delta
    n = d.size
    signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0
    observed = abs(d.sum())
    return float(np.mean(np.abs(signs @ d) >= observed - 1e-12 * np.abs(d).sum()))


# --------------------------------------------------------------------------- known answers


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.7062047),
        (0.975, 2, 4.3026527),
        (0.975, 10, 2.2281389),
        (0.975, 30, 2.0422725),
        (0.995, 5, 4.0321430),
        (0.8, 3, 0.9784723),
        (0.025, 10, -2.2281389),
        (0.975, 10**6, 1.9599663),
    ],
)
def test_t_quantile_matches_published_table(p: float, df: float, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-6)


def test_holm_reproduces_the_textbook_example() -> None:
    # Wikipedia "Holm-Bonferroni method": m = 4, p = 0.01, 0.04, 0.03, 0.005.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # R: p.adjust(c(.01, .02, .03, .04, .05), "holm") -> .05 .08 .09 .09 .09 (step-down max).
    assert holm([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])


def test_holm_caps_at_one_and_rejects_invalid_p_values() -> None:
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([0.1, NAN])
    with pytest.raises(ValueError):
        holm([1.2])


SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


def test_icc_2_1_reproduces_shrout_fleiss_1979() -> None:
    # Shrout & Fleiss (1979), Table 2: ICC(2,1) = 0.29 for 6 targets x 4 judges.
    assert icc(SHROUT_FLEISS) == pytest.approx(0.2898, abs=1e-4)


def test_icc_drops_incomplete_items_and_reports_undefined_as_none() -> None:
    with_gap = [*SHROUT_FLEISS, [5, NAN, 3, 4]]
    assert icc(pd.DataFrame(with_gap)) == pytest.approx(icc(SHROUT_FLEISS))
    assert icc([[1, 1], [2, 2], [3, 3]]) == pytest.approx(1.0)
    assert icc([[3, 3], [3, 3]]) is None
    assert icc([[1, 2, 3]]) is None


# Krippendorff (2011) "Computing Krippendorff's alpha-reliability": 4 coders x 12 units.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
).T  # items x raters


@pytest.mark.parametrize(
    ("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_krippendorff_alpha_reproduces_krippendorff_2011(level: str, expected: float) -> None:
    assert krippendorff_alpha(KRIPPENDORFF_2011, level) == pytest.approx(expected, abs=5e-4)  # type: ignore[arg-type]


def test_krippendorff_alpha_edge_cases() -> None:
    assert krippendorff_alpha([[1, 1], [2, 2], [4, NAN]]) == pytest.approx(1.0)
    assert krippendorff_alpha([[2, 2], [2, 2]]) is None  # no variation: undefined
    assert krippendorff_alpha([[1, NAN], [NAN, 2]]) is None  # nothing pairable
    with pytest.raises(ValueError):
        krippendorff_alpha([[1, 2]], level="ratio")  # type: ignore[arg-type]


def test_spearman_matches_known_values_with_and_without_ties() -> None:
    # Wikipedia "Spearman's rank correlation coefficient": IQ vs hours of TV, rho = -29/165.
    iq = [106, 86, 100, 101, 99, 103, 97, 113, 112, 110]
    tv = [7, 0, 27, 50, 28, 29, 20, 12, 6, 17]
    assert spearman(iq, tv) == pytest.approx(-29 / 165)
    # Ties: ranks of x are 1, 2.5, 2.5, 4 -> rho = 3 / sqrt(10) by hand.
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10))
    assert spearman([1, 2, NAN, 3], [3, 2, 100, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1], [2]) is None


def test_exact_permutation_p_value_on_hand_computable_cases() -> None:
    # Diffs 1, 2, 3: of the 8 sign flips only +++ and --- reach |sum| = 6 -> p = 2/8.
    result = paired_comparison([0, 0, 0], [1, 2, 3])
    assert result.p_value == pytest.approx(0.25)
    assert result.p_method == "exact sign-flip"
    # Diffs 0, 1, 1: |sum| = 2 is reached by ++ and -- under either sign of 0 -> 4/8.
    assert paired_comparison([0, 0, 0], [0, 1, 1]).p_value == pytest.approx(0.5)


def test_monte_carlo_p_value_uses_the_plus_one_correction() -> None:
    result = paired_comparison([0.0] * 40, [1.0] * 40, n_perm=999)
    assert result.p_value == pytest.approx(1 / 1000)
    assert result.p_method.startswith("monte carlo")


def test_mean_ci_is_the_student_t_interval() -> None:
    ci = mean_ci([1, 2, 3, None])
    half = 4.302652729749464 / math.sqrt(3)
    assert (ci.estimate, ci.n) == (2.0, 3)
    assert ci.low == pytest.approx(2 - half) and ci.high == pytest.approx(2 + half)
    assert mean_ci([]).estimate is None
    one = mean_ci([5.0])
    assert (one.estimate, one.low, one.high) == (5.0, None, None)


def test_bootstrap_ci_is_seeded_and_accepts_any_statistic() -> None:
    values = np.random.default_rng(3).exponential(size=80)
    first = bootstrap_ci(values, np.median, seed=1)
    assert first == bootstrap_ci(values, np.median, seed=1)
    assert first.method.startswith("BCa")
    assert first.low < float(np.median(values)) < first.high  # type: ignore[operator]
    trimmed = bootstrap_ci(values, lambda x: float(np.sort(x)[5:-5].mean()), n_boot=300)
    assert trimmed.low is not None and trimmed.low < trimmed.high  # type: ignore[operator]
    constant = bootstrap_ci([2.0, 2.0, 2.0])
    assert (constant.low, constant.high) == (2.0, 2.0)


@pytest.mark.parametrize(("effect", "n"), [(0.8, 15), (0.5, 34), (0.2, 199)])
def test_required_n_matches_gpower_for_paired_t(effect: float, n: int) -> None:
    # G*Power, t-test matched pairs, two-sided alpha = 0.05, power = 0.8.
    assert required_n(effect, 1.0) == n


def test_power_and_minimum_detectable_effect_agree() -> None:
    assert paired_t_power(0.5, 34) == pytest.approx(0.8078, abs=1e-4)  # G*Power
    mde = minimum_detectable_effect(34, 2.0)
    assert mde is not None and paired_t_power(mde / 2.0, 34) == pytest.approx(0.8, abs=1e-6)
    assert minimum_detectable_effect(1, 1.0) is None
    assert minimum_detectable_effect(30, 0.0) is None


# --------------------------------------------------------------------------- parity


def test_sign_flip_p_matches_scipy_permutation_test_and_brute_force() -> None:
    rng = np.random.default_rng(8)
    cases = [rng.normal(0.4, 1.0, n) for n in (3, 6, 9, 12)]
    cases.append(np.round(rng.normal(0.3, 1.0, 10), 1))  # rounded: many tied subset sums
    cases.append(np.array([0.0, 0.5, 0.5, 1.0, -0.5, 0.0, 1.0]))
    for d in cases:
        ours = paired_comparison(*paired_rows(d)).p_value
        reference = sps.permutation_test(
            (d,), lambda x, axis=-1: np.mean(x, axis=axis), permutation_type="samples",
            n_resamples=np.inf,
        ).pvalue  # fmt: skip
        assert ours == pytest.approx(min(1.0, reference), abs=1e-12)
        assert ours == pytest.approx(brute_force_sign_flip_p(d), abs=1e-12)


def test_paired_t_power_and_required_n_match_statsmodels() -> None:
    power_module = pytest.importorskip("statsmodels.stats.power")
    reference = power_module.TTestPower()
    for d in (0.1, 0.35, 0.8, 1.6):
        for n in (2, 5, 13, 60, 400):
            expected = reference.power(d, n, 0.05, alternative="two-sided")
            if math.isnan(expected):  # statsmodels hits scipy's NaN far in nct's lower tail
                expected = 1.0
            assert paired_t_power(d, n) == pytest.approx(expected, abs=1e-10)
        solved = reference.solve_power(d, nobs=None, alpha=0.05, power=0.8)
        assert required_n(d, 1.0) == max(2, math.ceil(solved))


def test_holm_and_mean_ci_match_statsmodels() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    weightstats = pytest.importorskip("statsmodels.stats.weightstats")
    p = np.random.default_rng(5).uniform(0, 0.2, 12)
    assert holm(p) == pytest.approx(list(multitest.multipletests(p, method="holm")[1]), abs=1e-15)
    x = np.random.default_rng(6).normal(3, 2, 25)
    low, high = weightstats.DescrStatsW(x).tconfint_mean(alpha=0.05)
    ci = mean_ci(x)
    assert (ci.low, ci.high) == pytest.approx((low, high), abs=1e-12)


def test_icc_matches_a_statsmodels_two_way_anova() -> None:
    pytest.importorskip("statsmodels")
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    m = np.random.default_rng(9).normal(size=(12, 3)) + np.arange(12)[:, None] * 0.3
    long = pd.DataFrame(
        [(i, j, m[i, j]) for i in range(12) for j in range(3)], columns=["item", "rater", "y"]
    )
    table = anova_lm(smf.ols("y ~ C(item) + C(rater)", data=long).fit())
    msr, msc, mse = table["mean_sq"].iloc[0], table["mean_sq"].iloc[1], table["mean_sq"].iloc[2]
    n, k = m.shape
    expected = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    assert icc(m) == pytest.approx(expected, abs=1e-10)


# --------------------------------------------------------------------------- data handling


def test_pairs_by_item_averages_repeats_and_counts_what_it_drops() -> None:
    a = pd.DataFrame(
        {
            "item_id": ["x", "x", "y", "z", "w"],
            "repeat": [0, 1, 0, 0, 0],
            "value": [0.2, 0.4, 0.5, None, 0.9],
        }
    )
    b = [("x", 0, 0.5), ("y", 0, 0.6), ("y", 1, 0.8), ("z", 0, 1.0), ("v", 0, 0.1)]
    result = paired_comparison(a, b)
    # Paired: x (0.3 -> 0.5), y (0.5 -> 0.7). z lost its only value in a; w and v unpaired.
    assert result.n == 2
    assert result.mean_a == pytest.approx(0.4) and result.mean_b == pytest.approx(0.6)
    assert result.mean_diff == pytest.approx(0.2)
    assert (result.missing_a, result.missing_b) == (1, 0)
    assert (result.only_a, result.only_b) == (1, 2)
    assert result.max_repeats == 2
    assert result.ci_method.startswith("percentile nested bootstrap")


def test_accepts_series_mappings_and_plain_sequences_alike() -> None:
    as_mapping = paired_comparison({"p": [1.0, 3.0], "q": 4.0}, {"p": 3.0, "q": [5.0]})
    as_series = paired_comparison(
        pd.Series([1.0, 3.0, 4.0], index=["p", "p", "q"]), pd.Series([3.0, 5.0], index=["p", "q"])
    )
    as_pairs = paired_comparison([("p", 1.0), ("p", 3.0), ("q", 4.0)], [("p", 3.0), ("q", 5.0)])
    for result in (as_mapping, as_series, as_pairs):
        assert result.n == 2 and result.mean_diff == pytest.approx(1.0)
    with pytest.raises(ValueError):
        paired_comparison([("p", 0, 1.0, "extra")], [("p", 1.0)])
    with pytest.raises(ValueError, match="text"):
        paired_comparison([("p", "0.5")], [("p", 1.0)])
    with pytest.raises(ValueError, match="missing column"):
        paired_comparison(pd.DataFrame({"item": [1], "value": [1.0]}), [(1, 1.0)])


def test_nullable_pandas_values_count_as_missing() -> None:
    a = pd.DataFrame({"item_id": [1, 2, 3], "value": pd.array([0.1, None, 0.3], dtype="Float64")})
    result = paired_comparison(a, [(1, 0.2), (2, 0.2), (3, 0.4)])
    assert (result.n, result.missing_a, result.only_b) == (2, 1, 1)


def test_degenerate_inputs_give_clear_results_not_nan() -> None:
    empty = paired_comparison([], [("x", 1.0)])
    assert empty.n == 0 and empty.p_value is None and empty.mean_diff is None
    assert empty.only_b == 1 and "no paired items" in empty.summary()

    one = paired_comparison([1.0], [2.0])
    assert one.p_value == 1.0 and one.ci_low is None and one.sd_diff is None
    assert "no 95% CI from one item" in one.summary()

    constant = paired_comparison([1.0] * 20, [1.25] * 20)
    assert constant.sd_diff == 0.0 and constant.effect_size is None and constant.mde is None
    assert constant.ci_low == constant.ci_high == pytest.approx(0.25)
    assert constant.p_value is not None and constant.p_value < 0.001
    assert constant.needed_n(0.1) is None

    identical = paired_comparison([0.5, 0.7, 0.9], [0.5, 0.7, 0.9])
    assert identical.p_value == 1.0 and identical.ties == 3 and not identical.significant
    for result in (empty, one, constant, identical):
        values = [v for v in result.to_dict().values() if isinstance(v, float)]
        assert not any(math.isnan(v) for v in values)


def test_reports_effect_size_wins_and_a_one_line_decision() -> None:
    rng = np.random.default_rng(11)
    base = rng.normal(0.6, 0.1, 150)
    a = base + rng.normal(0, 0.05, 150)
    b = base + 0.06 + rng.normal(0, 0.05, 150)
    result = paired_comparison(list(a), list(b), metric="quality", label_a="v1", label_b="v2")
    assert result.significant
    assert result.wins + result.ties + result.losses == 150
    assert result.effect_size == pytest.approx(result.mean_diff / result.sd_diff)  # type: ignore[operator]
    line = result.summary()
    assert line.startswith("v2 beats v1 by +0.0")
    assert "95% CI" in line and "n = 150" in line
    assert (
        paired_comparison(list(b), list(a), label_a="v2", label_b="v1")
        .summary()
        .startswith("v1 trails v2 by -0.0")
    )


def test_non_significant_summary_says_what_sample_size_would_be_needed() -> None:
    rng = np.random.default_rng(5)
    diffs = rng.normal(0.0, 0.1, 40)
    diffs += 0.005 - diffs.mean()  # a small observed difference, far from significance
    result = paired_comparison(*paired_rows(diffs), metric="quality")
    assert not result.significant
    line = result.summary(target_effect=0.02)
    needed = result.needed_n(0.02)
    assert line.startswith("no detectable difference in quality")
    assert f"you would need about {needed} items to see +0.02" in line
    assert needed is not None and needed > result.n
    # The MDE is the effect the design detects with 80% power.
    assert result.mde == pytest.approx(minimum_detectable_effect(40, result.sd_diff))  # type: ignore[arg-type]


def test_compare_many_holm_adjusts_across_the_family() -> None:
    rng = np.random.default_rng(2)
    strong, null = rng.normal(0.5, 1, 30), rng.normal(0, 1, 30)
    results = compare_many(
        {"quality": paired_rows(strong), "rouge_l": paired_rows(null), "empty": ([], [])},
        **FAST,
    )
    tested = [results["quality"], results["rouge_l"]]
    raw = [r.p_value for r in tested]
    assert [r.p_adjusted for r in tested] == pytest.approx(holm(raw))  # type: ignore[arg-type]
    assert all(r.adjustment == "holm (m=2)" for r in tested)
    assert results["empty"].p_adjusted is None
    assert results["quality"].metric == "quality"
    assert "Holm" in results["quality"].summary()


# --------------------------------------------------------------------------- calibration

SEEDS = range(300)


@pytest.mark.parametrize(("d_z", "n"), [(0.5, 60), (0.5, 30)])
def test_power_with_a_planted_effect_matches_the_analytic_power(d_z: float, n: int) -> None:
    expected = paired_t_power(d_z, n)  # 0.968 and 0.754
    rejections = sum(
        paired_comparison(
            *paired_rows(np.random.default_rng(s).normal(d_z, 1.0, n)), **FAST
        ).p_value
        <= 0.05  # type: ignore[operator]
        for s in SEEDS
    )
    # Sign-flip vs t-test power and Monte Carlo p noise: allow 0.02 beyond sampling error.
    assert (
        abs(rejections / len(SEEDS) - expected) <= binomial_tolerance(expected, len(SEEDS)) + 0.02
    )


@pytest.mark.parametrize("n", [12, 25])  # exact and Monte Carlo branches
def test_false_positive_rate_stays_near_alpha_without_an_effect(n: int) -> None:
    seeds = range(400)
    rejections = 0
    for s in seeds:
        rng = np.random.default_rng(1000 + s)
        item = rng.normal(0, 1, n)  # shared item difficulty; heavy-tailed, symmetric noise
        a = item + rng.standard_t(3, n)
        b = item + rng.standard_t(3, n)
        rejections += paired_comparison(list(a), list(b), **FAST).p_value <= 0.05  # type: ignore[operator]
    assert abs(rejections / len(seeds) - 0.05) <= binomial_tolerance(0.05, len(seeds))


def test_bootstrap_ci_covers_the_true_difference_about_95_percent() -> None:
    true_diff = 0.3
    covered = 0
    for s in SEEDS:
        diffs = np.random.default_rng(5000 + s).normal(true_diff, 1.0, 40)
        result = paired_comparison(*paired_rows(diffs), n_boot=1000, n_perm=100)
        covered += result.ci_low <= true_diff <= result.ci_high  # type: ignore[operator]
    # Percentile intervals run ~1 point narrow at n = 40; allow that beyond sampling error.
    assert abs(covered / len(SEEDS) - 0.95) <= binomial_tolerance(0.95, len(SEEDS)) + 0.01


def test_nested_bootstrap_covers_at_least_nominally_with_noisy_repeats() -> None:
    true_diff = 0.2
    covered = 0
    seeds = range(200)
    for s in seeds:
        rng = np.random.default_rng(9000 + s)
        n, k = 30, 3
        item = rng.normal(0, 1, n)
        effect = rng.normal(true_diff, 0.5, n)
        a = [(i, r, item[i] + rng.normal(0, 0.5)) for i in range(n) for r in range(k)]
        b = [(i, r, item[i] + effect[i] + rng.normal(0, 0.5)) for i in range(n) for r in range(k)]
        result = paired_comparison(a, b, n_boot=500, n_perm=100)
        covered += result.ci_low <= true_diff <= result.ci_high  # type: ignore[operator]
    # Two-level resampling is conservative, so coverage may exceed 95% but not fall short.
    assert covered / len(seeds) >= 0.95 - binomial_tolerance(0.95, len(seeds))


# --------------------------------------------------------------------------- properties

diff_lists = st.lists(
    st.floats(min_value=-5, max_value=5, allow_nan=False).map(lambda x: round(x, 3)),
    min_size=0,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(diff_lists, st.integers(0, 2**16))
def test_property_permutation_p_is_in_unit_interval(diffs: list[float], seed: int) -> None:
    result = paired_comparison(*paired_rows(np.array(diffs)), n_boot=50, n_perm=200, seed=seed)
    if diffs:
        assert result.p_value is not None and 0.0 < result.p_value <= 1.0
    else:
        assert result.p_value is None


@settings(max_examples=60, deadline=None)
@given(diff_lists.filter(lambda d: len(d) >= 2), st.integers(0, 2**16))
def test_property_ci_contains_the_point_estimate(diffs: list[float], seed: int) -> None:
    result = paired_comparison(*paired_rows(np.array(diffs)), n_boot=100, n_perm=100, seed=seed)
    assert result.ci_low <= result.mean_diff <= result.ci_high  # type: ignore[operator]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 12), st.integers(0, 2), st.floats(0, 1).map(lambda x: round(x, 2))
        ),
        max_size=40,
    ),
    st.lists(
        st.tuples(
            st.integers(0, 12), st.integers(0, 2), st.floats(0, 1).map(lambda x: round(x, 2))
        ),
        max_size=40,
    ),
)
def test_property_swapping_cells_flips_the_difference_and_swaps_wins_and_losses(
    a: list[tuple[int, int, float]], b: list[tuple[int, int, float]]
) -> None:
    forward = paired_comparison(a, b, n_boot=50, n_perm=200)
    backward = paired_comparison(b, a, n_boot=50, n_perm=200)
    assert forward.n == backward.n
    if forward.n:
        assert backward.mean_diff == pytest.approx(-forward.mean_diff)  # type: ignore[operator]
        assert backward.p_value == pytest.approx(forward.p_value)
    assert (forward.wins, forward.ties, forward.losses) == (
        backward.losses,
        backward.ties,
        backward.wins,
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_property_holm_is_monotone_capped_and_never_below_raw(p: list[float]) -> None:
    adjusted = holm(p)
    assert all(q >= r for q, r in zip(adjusted, p, strict=True))
    assert all(q <= 1.0 for q in adjusted)
    order = np.argsort(p, kind="stable")
    in_raw_order = [adjusted[i] for i in order]
    assert all(x <= y for x, y in zip(in_raw_order, in_raw_order[1:], strict=False))
