"""Statistics that turn an experiment into a decision.

Pure functions over numbers: no I/O, no global state, every random draw seeded. The centre
is :func:`paired_comparison`, which compares two cells of an experiment on one metric over
the same items and says, in one line, whether one beats the other, by how much, how sure
we are, and how many items it would take to see a smaller difference.

Conventions
-----------
* Differences are always ``b - a``: a positive ``mean_diff`` means cell *b* scored higher.
* "Undefined" is ``None``, never ``NaN``: a mean of no items, a confidence interval the data
  cannot bound, an effect size when every difference is equal.
* One procedure decides. The p-value is a paired sign-flip permutation test and the interval
  is that same test inverted, so "the interval excludes 0" and "p <= alpha" are one fact;
  power, the minimum detectable effect and the items needed are computed for that test.
* Where scipy computes the same number (Student-t and non-central t distributions, ranks,
  Spearman's rho, the BCa bootstrap) it is called rather than re-implemented.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize  # type: ignore[import-untyped]  # no stubs; mypy flags it once
from scipy import stats as sps

__all__ = [
    "EXACT_MAX_N",
    "ICC_MIN_ITEMS",
    "ConfidenceInterval",
    "PairedComparison",
    "bootstrap_ci",
    "compare_many",
    "holm",
    "icc",
    "icc_with_reason",
    "krippendorff_alpha",
    "mean_ci",
    "minimum_detectable_effect",
    "paired_comparison",
    "paired_t_power",
    "required_n",
    "sign_flip_min_n",
    "sign_flip_power",
    "spearman",
    "t_quantile",
]

FloatArray = NDArray[np.float64]
K = TypeVar("K", bound=Hashable)
PowerTest = Literal["sign-flip", "t"]

#: Upper bound on the number of floats held by one vectorised block (~16 MB).
_BLOCK = 2_000_000
#: Largest n for which the sign-flip test enumerates every sign vector. 2**20 vectors take
#: ~10 ms and ~20 MB (half of them are enumerated: a vector and its negation are equivalent).
EXACT_MAX_N = 20
#: Largest n whose sign-flip power is simulated. Beyond it the paired t-test's power is used:
#: the sign-flip test with statistic |sum d| is the |t| test with a conditional critical
#: value (sum d_i^2 is the same for every sign vector); for n = 13-60 its simulated power at
#: the t-test's MDE is 0.77-0.82 (standard error 0.013; BENCHMARKS.md, "Statistics
#: calibration"). Below 13 the t-test's MDE overstates it (0.55 at n = 6, 0.76-0.79 at
#: n = 7-12), hence the simulation.
POWER_SIM_MAX_N = 12
#: Normal data sets per n in that simulation; each is also used mirrored (-Z), so power is
#: estimated from 8,000 exact tests: standard error <= 0.0045 at power 0.8.
POWER_SIM_DATASETS = 4000
_POWER_SIM_SEED = 20_250_613


# --------------------------------------------------------------------------- distributions


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` > 0 degrees of freedom (scipy)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}")
    return float(sps.t.ppf(p, df))


def paired_t_power(effect_size: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` for standardized effect d_z.

    ``effect_size`` is the true mean difference divided by the SD of the differences; ``n``
    is the number of pairs (>= 2). From scipy's non-central t (df = n - 1, non-centrality
    d_z * sqrt(n)); agrees with G*Power and statsmodels' ``TTestPower``. This is the t-test's
    power; :func:`sign_flip_power` is the power of the test :func:`paired_comparison` uses.
    """
    if n < 2:
        raise ValueError(f"power needs at least 2 pairs, got n={n}")
    _check_alpha(alpha)
    df = n - 1
    nc = abs(effect_size) * math.sqrt(n)
    crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    # The lower tail as sf at -nc: scipy's nct.cdf returns NaN far in the tail (df=5, nc=10).
    power = float(sps.nct.sf(crit, df, nc)) + float(sps.nct.sf(crit, df, -nc))
    return min(1.0, max(0.0, power))


def sign_flip_min_n(alpha: float = 0.05) -> int:
    """Fewest items with which the exact two-sided sign-flip test can reach p <= ``alpha``.

    Its smallest possible p-value is 2/2^n (all differences with one sign, and the mirror
    image), so n must satisfy 2/2^n <= alpha: 6 items at alpha = 0.05, 8 at 0.01.
    """
    _check_alpha(alpha)
    n = 1
    while 2.0 / 2.0**n > alpha:
        n += 1
    return n


@lru_cache(maxsize=4)
def _split_sizes(n: int) -> tuple[FloatArray, FloatArray]:
    """Sizes of the 2**(n-1) subsets F of the first n - 1 items (clamped to >= 1, for the
    mean of F empty, which is replaced anyway) and of their complements, in the order
    :func:`_subset_means` builds them. Cached read-only: each call of that function for n
    items would otherwise rebuild them."""
    inside = np.zeros(2 ** (n - 1))
    for i in range(n - 1):
        inside[2**i : 2 ** (i + 1)] = inside[: 2**i] + 1.0
    outside = n - inside
    inside[0] = 1.0
    inside.flags.writeable = outside.flags.writeable = False
    return inside, outside


def _subset_means(d: FloatArray) -> tuple[FloatArray, FloatArray]:
    """For each row of ``d`` (data sets x n items) and each split of its items in two.

    Splits are indexed by the subset F of the first n - 1 items (the last item is always in
    the complement, so each split appears once); index 0 is F empty. Returns
    ``lows = min(mean_F, mean_not_F)`` and ``highs = max(...)``, with -inf/+inf for F empty.
    """
    rows, n = d.shape
    sums = np.empty((rows, 2 ** (n - 1)))
    sums[:, 0] = 0.0
    for i in range(n - 1):  # subset sums by doubling: each sum adds its items in index order
        np.add(sums[:, : 2**i], d[:, i : i + 1], out=sums[:, 2**i : 2 ** (i + 1)])
    size_in, size_out = _split_sizes(n)
    outside = np.subtract(d.sum(axis=1, keepdims=True), sums)
    outside /= size_out
    sums /= size_in  # now the mean of F
    lows = np.minimum(sums, outside)
    highs = np.maximum(sums, outside, out=sums)
    lows[:, 0] = -np.inf
    highs[:, 0] = np.inf
    return lows, highs


def _critical_count(total: int, alpha: float) -> int:
    """Largest count c with c / total <= alpha, as the float comparison sees it."""
    c = math.floor(alpha * total)
    while (c + 1) / total <= alpha:
        c += 1
    while c >= 0 and c / total > alpha:
        c -= 1
    return c


@lru_cache(maxsize=64)
def _power_breakpoints(n: int, alpha: float) -> tuple[FloatArray, FloatArray]:
    """Where the exact sign-flip test starts (``rise``) and stops (``fall``) rejecting.

    For seeded standard-normal data sets Z (and -Z) of n items, the test of 0 on Z + c
    rejects exactly when -c lies outside the inverted interval [L, U] of Z (the interval is
    shift-equivariant). So for c >= 0, power(c) = (#{rise < c} + #{fall > c}) / (2R) with
    rise = {-L, U(-Z) mirrored} and fall = the wrong-direction rejections. Sorted arrays.
    """
    rng = np.random.default_rng([_POWER_SIM_SEED, n])
    z = rng.standard_normal((POWER_SIM_DATASETS, n))
    j = _critical_count(2**n, alpha) + 1  # the interval ends at the j-th subset mean
    k = -(-j // 2)  # each split counts twice (F and its complement)
    lows, highs = [], []
    step = max(1, _BLOCK // 2 ** (n - 1))
    for start in range(0, z.shape[0], step):
        lo, hi = _subset_means(z[start : start + step])
        lows.append(np.partition(lo, k - 1, axis=1)[:, k - 1])
        highs.append(-np.partition(-hi, k - 1, axis=1)[:, k - 1])
    low, high = np.concatenate(lows), np.concatenate(highs)
    # Z rejects at shift c when L > -c or U < -c; its mirror -Z has L' = -U and U' = -L.
    rise = np.sort(np.concatenate([-low, high]))
    fall = np.sort(np.concatenate([-high, low]))
    return rise, fall


def _simulated_power(effect_size: float, n: int, alpha: float) -> float:
    rise, fall = _power_breakpoints(n, alpha)
    c = abs(effect_size)
    # Closed at the breakpoint, as in _simulated_mde, so power at the reported MDE >= target.
    hits = np.searchsorted(rise, c, side="right") + fall.size - np.searchsorted(fall, c, "right")
    return float(hits) / rise.size


def sign_flip_power(effect_size: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided sign-flip test :func:`paired_comparison` uses, for normal data.

    ``effect_size`` is d_z (true mean difference / SD of the differences). 0.0 when n items
    can never reach ``alpha`` (see :func:`sign_flip_min_n`). For n <= ``POWER_SIM_MAX_N``
    it is the exact test's power estimated from 8,000 seeded normal data sets (standard
    error <= 0.0045; the same data sets for every effect, so power rises with the effect).
    Above that it is the paired t-test's power, the sign-flip test's large-n limit.
    """
    _check_alpha(alpha)
    if n < sign_flip_min_n(alpha):
        return 0.0
    if n <= POWER_SIM_MAX_N:
        return _simulated_power(effect_size, n, alpha)
    return paired_t_power(effect_size, n, alpha)


@lru_cache(maxsize=1024)
def _t_mde(n: int, alpha: float, power: float) -> float:
    """d_z at which the paired t-test has ``power`` (root of a monotone function); cached,
    since a dozen non-central t evaluations (~5 ms) would dominate a comparison."""
    hi = 1.0
    while paired_t_power(hi, n, alpha) < power:
        hi *= 2.0
    return float(
        optimize.brentq(lambda d: paired_t_power(d, n, alpha) - power, 0.0, hi, xtol=1e-12)
    )


def _simulated_mde(n: int, alpha: float, power: float) -> float | None:
    rise, fall = _power_breakpoints(n, alpha)
    candidates = rise[rise > 0]
    # Power just above each candidate: the candidates at or below it, plus fall terms above.
    hits = np.searchsorted(rise, candidates, side="right") + (
        fall.size - np.searchsorted(fall, candidates, side="right")
    )
    reached = np.nonzero(hits >= power * rise.size)[0]
    return float(candidates[reached[0]]) if reached.size else None


def minimum_detectable_effect(
    n: int,
    sd_diff: float,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    test: PowerTest = "sign-flip",
) -> float | None:
    """Smallest true mean difference detected with ``power`` by a two-sided test at ``alpha``.

    In the metric's own units (d_z times ``sd_diff``), for normal differences. ``test`` is
    the sign-flip test :func:`paired_comparison` uses (default; see :func:`sign_flip_power`
    for how its power is computed) or the paired ``"t"``-test. ``None`` when undefined:
    fewer than 2 pairs, ``sd_diff`` not positive, or (sign-flip) n items can never reach
    ``alpha``.
    """
    _check_alpha(alpha)
    if n < 2 or not sd_diff > 0:
        return None
    if test == "sign-flip":
        if n < sign_flip_min_n(alpha):
            return None
        if n <= POWER_SIM_MAX_N:
            mde = _simulated_mde(n, alpha, power)
            return None if mde is None else mde * sd_diff
    return _t_mde(n, alpha, power) * sd_diff


def _t_required_n(d: float, alpha: float, power: float) -> int:
    z = float(sps.norm.ppf(1.0 - alpha / 2.0) + sps.norm.ppf(power))
    n = max(2, math.ceil((z / d) ** 2))
    if n > 10**8:  # t and normal agree; the normal-theory answer is the answer
        return n
    while paired_t_power(d, n, alpha) < power:
        n += max(1, n // 50)
    while n > 2 and paired_t_power(d, n - 1, alpha) >= power:
        n -= 1
    return n


def required_n(
    effect: float,
    sd_diff: float,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    test: PowerTest = "sign-flip",
) -> int | None:
    """Smallest number of paired items for a two-sided test to detect ``effect`` with ``power``.

    ``effect`` is a mean difference in the metric's units (its sign is ignored). ``test`` as
    in :func:`minimum_detectable_effect`; for the sign-flip test the answer is never below
    :func:`sign_flip_min_n`. Returns ``None`` when ``sd_diff`` is not positive (no
    variability to plan from). Raises ``ValueError`` for a zero effect.
    """
    if effect == 0:
        raise ValueError("effect must be non-zero")
    _check_alpha(alpha)
    if not sd_diff > 0:
        return None
    d = abs(effect) / sd_diff
    n_t = _t_required_n(d, alpha, power)
    # Under normality no level-alpha test beats the t-test, so a t answer well above the
    # simulated range is final; near it, scan the simulated powers (which carry noise of
    # about 0.005, so they may beat the t-test by a hair) to stay consistent with the MDE.
    if test == "t" or n_t > POWER_SIM_MAX_N + 2:
        return n_t
    for n in range(sign_flip_min_n(alpha), POWER_SIM_MAX_N + 1):
        if _simulated_power(d, n, alpha) >= power:
            return n
    return max(n_t, POWER_SIM_MAX_N + 1)


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with a two-sided interval at ``level`` (e.g. 0.95) from ``n`` values.

    ``low``/``high`` are ``None`` when fewer than two values make an interval meaningless;
    ``estimate`` is ``None`` when there are no values at all.
    """

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    level: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-type fields, ready for JSON or a DataFrame row."""
        return asdict(self)


def _clean(values: ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[~np.isnan(arr)]


def mean_ci(values: ArrayLike, alpha: float = 0.05) -> ConfidenceInterval:
    """Mean with a Student-t interval at level ``1 - alpha``; NaN/None values are ignored.

    mean ± t(1 - alpha/2, n - 1) · sd / sqrt(n). With one value the interval is ``None``;
    with identical values it has zero width.
    """
    x = _clean(values)
    n = int(x.size)
    if n == 0:
        return ConfidenceInterval(None, None, None, 0, 1.0 - alpha, "t")
    mean = float(x.mean())
    if n == 1:
        return ConfidenceInterval(mean, None, None, 1, 1.0 - alpha, "t")
    half = t_quantile(1.0 - alpha / 2.0, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return ConfidenceInterval(mean, mean - half, mean + half, n, 1.0 - alpha, "t")


#: scipy >= 1.15 seeds the bootstrap with ``rng``; 1.11-1.14 only know ``random_state``.
_BOOTSTRAP_RNG = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"


def bootstrap_ci(
    values: ArrayLike,
    statistic: Callable[..., Any] = np.mean,
    *,
    n_boot: int = 5000,
    alpha: float = 0.05,
    seed: int = 0,
    method: Literal["BCa", "percentile", "basic"] = "BCa",
) -> ConfidenceInterval:
    """Bootstrap interval at level ``1 - alpha`` for ``statistic`` of ``values`` (scipy).

    ``method`` is scipy's: ``"BCa"`` (default: bias-corrected and accelerated, second-order
    accurate, so it tracks skewed statistics better than the percentile interval, which runs
    narrow at small n), ``"percentile"`` or ``"basic"``. NaN/None values are ignored.
    ``statistic`` reduces an array; if it accepts ``axis=`` (numpy reductions do) resamples
    are evaluated in one vectorised call. Deterministic for a given ``seed``. The interval
    is widened to contain the point estimate if it does not (BCa can, for odd statistics).
    Like every bootstrap interval it runs narrow in small samples: for a mean of 20 values
    the 95% BCa interval covered 0.93 (normal data) and 0.91 (skewed) in the calibration
    (BENCHMARKS.md). For a mean prefer :func:`mean_ci`; for the difference between two
    cells use :func:`paired_comparison`, whose interval agrees with its p-value.
    """
    x = _clean(values)
    n = int(x.size)
    label = f"{method} bootstrap (n_boot={n_boot})"
    if n == 0:
        return ConfidenceInterval(None, None, None, 0, 1.0 - alpha, label)
    estimate = float(statistic(x))
    if n == 1:
        return ConfidenceInterval(estimate, None, None, 1, 1.0 - alpha, label)
    if np.all(x == x[0]):  # every resample is the sample; BCa's acceleration would be 0/0
        return ConfidenceInterval(estimate, estimate, estimate, n, 1.0 - alpha, label)
    result = sps.bootstrap(
        (x,),
        statistic,
        n_resamples=n_boot,
        confidence_level=1.0 - alpha,
        method=method,
        **{_BOOTSTRAP_RNG: np.random.default_rng(seed)},
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):  # degenerate resamples: fall back to percentile
        return bootstrap_ci(x, statistic, n_boot=n_boot, alpha=alpha, seed=seed,
                            method="percentile")  # fmt: skip
    return ConfidenceInterval(
        estimate, min(low, estimate), max(high, estimate), n, 1.0 - alpha, label
    )


# --------------------------------------------------------------------------- paired A/B


#: Observations of one cell on one metric: a DataFrame with item and value columns, a
#: Series indexed by item id, a mapping item id -> value(s), a sequence of
#: ``(item_id, repeat, value)`` or ``(item_id, value)`` tuples, or a flat sequence of numbers
#: (position = item id). Several values for one item are repeats.
Observations = Any


@dataclass(frozen=True)
class _Cell:
    values: dict[Hashable, list[float]]
    n_missing: int


def _is_number(x: object) -> bool:
    return x is None or isinstance(x, int | float | np.integer | np.floating)


def _is_missing(x: object) -> bool:
    # None, or pandas' NA/NaT scalars (float() of pd.NA raises, so test by type).
    return x is None or type(x).__name__ in ("NAType", "NaTType")


def _collect(obs: Observations, item_col: str, value_col: str) -> _Cell:
    """Group one cell's observations by item, dropping missing values (and counting them)."""
    pairs: Iterable[tuple[Any, Any]]
    if hasattr(obs, "columns"):  # pandas DataFrame
        absent = [c for c in (item_col, value_col) if c not in obs.columns]
        if absent:
            raise ValueError(f"missing column(s) {absent}; have {list(obs.columns)}")
        pairs = zip(obs[item_col].tolist(), obs[value_col].tolist(), strict=True)
    elif hasattr(obs, "index") and hasattr(obs, "tolist"):  # pandas Series
        pairs = zip(list(obs.index), obs.tolist(), strict=True)
    elif isinstance(obs, Mapping):
        pairs = (
            (key, v) for key, val in obs.items() for v in ([val] if _is_number(val) else list(val))
        )
    else:
        rows = list(obs)
        if rows and all(_is_number(r) for r in rows):
            pairs = enumerate(rows)
        else:
            tuples = []
            for row in rows:
                if not isinstance(row, Sequence) or len(row) not in (2, 3):
                    raise ValueError(
                        f"expected (item_id, value) or (item_id, repeat, value) rows, got {row!r}"
                    )
                tuples.append((row[0], row[-1]))
            pairs = tuples
    grouped: dict[Hashable, list[float]] = {}
    missing = 0
    for item, value in pairs:
        if isinstance(value, str):
            raise ValueError(f"value for item {item!r} is text, not a number: {value!r}")
        v = math.nan if _is_missing(value) else float(value)
        if math.isnan(v) or _is_missing(item) or (isinstance(item, float) and math.isnan(item)):
            missing += 1
            continue
        grouped.setdefault(item, []).append(v)
    return _Cell(grouped, missing)


# --------------------------------------------------------------------------- sign-flip test


@dataclass(frozen=True)
class _SignFlip:
    """The sign-flip null distribution of one set of differences, in the form both the
    p-value and the interval read.

    Flipping the signs of the items in a set F leaves |sum(d - delta)| at least as large as
    observed exactly when, for delta below the mean, mean_F(d) <= delta or mean_notF(d) <=
    delta (expand |T - 2 x| >= |T| with x = sum_F(d - delta)); above the mean, with >= .
    So each sign vector is summarised by ``lows`` = min(mean_F, mean_notF) and ``highs`` =
    max(...), and p(delta) = #{lows <= delta} / total below the mean, #{highs >= delta} /
    total above it. Each entry stands for ``weight`` sign vectors; ``trivial`` more (the
    observed signs, in the Monte Carlo case) are always at least as extreme.
    """

    lows: FloatArray
    highs: FloatArray
    weight: int
    trivial: int
    total: int
    p_method: str
    ci_method: str

    def count(self, delta: float, mean: float, tol: float) -> int:
        """Sign vectors at least as extreme as observed, testing shift ``delta``."""
        if delta < mean:
            hits = np.count_nonzero(self.lows <= delta + tol)
        else:
            hits = np.count_nonzero(self.highs >= delta - tol)
        return self.trivial + self.weight * int(hits)

    def kth(self, j: int, upper: bool) -> float:
        """The j-th smallest ``lows`` (largest ``highs`` if ``upper``), counting weights."""
        if j <= self.trivial:
            return math.inf if upper else -math.inf
        k = -(-(j - self.trivial) // self.weight)  # ceil: each entry counts ``weight`` times
        if upper:
            last = self.highs.size - k  # the k-th largest, without negating a copy
            return float(np.partition(self.highs, last)[last])
        return float(np.partition(self.lows, k - 1)[k - 1])


def _sign_flip(rng: np.random.Generator, diffs: FloatArray, n_perm: int) -> _SignFlip:
    n = diffs.size
    if n <= EXACT_MAX_N:
        lows, highs = _subset_means(diffs[None, :])
        vectors = f"2^{n} = {2**n} sign vectors"
        return _SignFlip(
            lows[0], highs[0], weight=2, trivial=0, total=2**n,
            p_method=f"exact sign-flip ({vectors})",
            ci_method=f"inverted exact sign-flip test ({vectors})",
        )  # fmt: skip
    total = float(diffs.sum())
    low_parts, high_parts = [], []
    step = max(1, _BLOCK // n)
    for start in range(0, n_perm, step):
        flipped = rng.random((min(step, n_perm - start), n)) < 0.5
        size = flipped.sum(axis=1).astype(np.float64)
        # einsum, not @: a (10000 x n) @ (n,) product through multi-threaded BLAS was 30x
        # slower here than numpy's own loop, from thread start-up on 2 busy cores.
        inside = np.einsum("ij,j->i", flipped.astype(np.float64), diffs)
        outside = (total - inside) / np.maximum(n - size, 1.0)
        inside /= np.maximum(size, 1.0)
        trivial = (size == 0) | (size == n)  # all signs kept or all flipped: as extreme
        low_parts.append(np.where(trivial, -np.inf, np.minimum(inside, outside)))
        high_parts.append(np.where(trivial, np.inf, np.maximum(inside, outside)))
    return _SignFlip(
        np.concatenate(low_parts), np.concatenate(high_parts), weight=1, trivial=1,
        total=n_perm + 1,
        p_method=f"monte carlo sign-flip (n_perm={n_perm}, p = (1 + #extreme) / (n_perm + 1))",
        ci_method=f"inverted monte carlo sign-flip test (the same {n_perm} sign vectors)",
    )  # fmt: skip


def _fmt(x: float, signed: bool = True) -> str:
    text = f"{x:+.3g}" if signed else f"{x:.3g}"
    return text.replace("e-0", "e-").replace("e+0", "e+")


def _fmt_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


@dataclass(frozen=True)
class PairedComparison:
    """Cell *b* against cell *a* on one metric over the items both cells scored.

    All differences are ``b - a``. Means are over paired items of each item's mean over
    repeats, so ``mean_diff == mean_b - mean_a``. Fields that cannot be computed from the
    data are ``None`` (no items: every statistic; one item: SD; too few items for the test
    to ever reach ``alpha``: the interval and the MDE; zero SD: effect size and MDE).

    ``p_floor`` is the smallest p-value the test can produce with these items (2/2^n for
    the exact test); when it exceeds ``alpha`` no verdict is possible. ``power_method`` says
    how ``mde`` and :meth:`needed_n` were computed; ``tie_tolerance`` is the tolerance
    (metric units) within which a difference or a permutation statistic counts as a tie.
    """

    metric: str
    label_a: str
    label_b: str
    n: int
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: str
    p_value: float | None
    p_method: str
    wins: int
    ties: int
    losses: int
    sd_diff: float | None
    effect_size: float | None
    mde: float | None
    alpha: float
    power: float
    only_a: int
    only_b: int
    missing_a: int
    missing_b: int
    max_repeats: int
    p_adjusted: float | None = None
    adjustment: str | None = None
    p_floor: float | None = None
    power_method: str = ""
    tie_tolerance: float | None = None

    @property
    def significant(self) -> bool:
        """True when the (Holm-adjusted, if set) p-value is at most ``alpha``."""
        p = self.p_adjusted if self.p_adjusted is not None else self.p_value
        return p is not None and p <= self.alpha

    @property
    def ci_excludes_zero(self) -> bool:
        """True when the interval lies strictly on one side of 0 (it then has p <= alpha)."""
        return (
            self.ci_low is not None
            and self.ci_high is not None
            and (self.ci_low > 0 or self.ci_high < 0)
        )

    @property
    def reachable(self) -> bool:
        """False when no outcome with this many items could give p <= ``alpha``."""
        return self.p_floor is not None and self.p_floor <= self.alpha

    def needed_n(self, target_effect: float, power: float | None = None) -> int | None:
        """Paired items needed to detect a true difference of ``target_effect`` (metric units).

        For the sign-flip test this comparison uses (:func:`required_n`), with its
        ``sd_diff`` and ``alpha`` and the given ``power`` (default ``self.power``); never
        fewer than :func:`sign_flip_min_n`. ``None`` when ``sd_diff`` is unknown or zero.
        """
        if self.sd_diff is None:
            return None
        return required_n(target_effect, self.sd_diff, self.alpha, power or self.power)

    def to_dict(self) -> dict[str, Any]:
        """Every field plus ``significant`` and ``summary``, as plain JSON-ready types."""
        out = asdict(self)
        out["significant"] = self.significant
        out["summary"] = self.summary()
        return out

    def summary(self, target_effect: float | None = None) -> str:
        """One line a reader can act on.

        ``"v2 beats v1 by +0.06 quality (95% CI +0.02..+0.1, p = 0.004, n = 150; exact
        sign-flip test, interval by inverting it)"`` ("trails" when b is lower; wording
        assumes higher is better) only when the (Holm-adjusted) p-value is at most alpha
        *and* the interval excludes 0. Otherwise ``"no detectable difference ..."`` with the
        minimum detectable effect and the items needed to see ``target_effect`` (default:
        the observed difference), or, when n items can never reach alpha, that it cannot.
        """
        a, b, metric = self.label_a, self.label_b, self.metric
        if self.n == 0 or self.mean_diff is None:
            return (
                f"no paired items for {metric} between {b} and {a} "
                f"(items only in {a}: {self.only_a}, only in {b}: {self.only_b}, "
                f"missing values: {self.missing_a + self.missing_b})"
            )
        level = f"{100 * (1 - self.alpha):g}% CI"
        if self.ci_low is not None and self.ci_high is not None:
            ci = f"{level} {_fmt(self.ci_low)}..{_fmt(self.ci_high)}"
        elif self.n == 1:
            ci = f"no {level} from one item"
        else:
            ci = f"no {level}: every difference is plausible"
        p = _fmt_p(self.p_value) if self.p_value is not None else "p = n/a"
        if self.p_adjusted is not None:
            p += f", Holm {_fmt_p(self.p_adjusted).replace('p ', '', 1)}"
        stats = f"{ci}, {p}, n = {self.n}"
        if self.significant and self.ci_excludes_zero:
            verb = "beats" if self.mean_diff > 0 else "trails"
            how = "exact" if self.p_method.startswith("exact") else "monte carlo"
            return (
                f"{b} {verb} {a} by {_fmt(self.mean_diff)} {metric} ({stats}; {how} "
                "sign-flip test, interval by inverting it)"
            )
        target = target_effect if target_effect is not None else self.mean_diff
        needed = self.needed_n(target) if target else None
        if not self.reachable:
            floor = self.p_floor if self.p_floor is not None else 1.0
            line = (
                f"no verdict possible on {metric}: {b} vs {a} {_fmt(self.mean_diff)} ({stats}): "
                f"with {self.n} item{'s' if self.n != 1 else ''} the sign-flip test can never "
                f"reach p <= {self.alpha:g} (the smallest possible p is 2/2^{self.n} = "
                f"{floor:.3g}); at least {sign_flip_min_n(self.alpha)} items are needed"
            )
            if needed is not None and target:
                line += f", about {needed} to see {_fmt(target)} with {self.power:.0%} power"
            return line
        line = f"no detectable difference in {metric}: {b} vs {a} {_fmt(self.mean_diff)} ({stats})"
        if self.mde is not None:
            line += f"; detectable at {self.power:.0%} power: ±{_fmt(self.mde, signed=False)}"
        if needed is not None and target:
            if needed > self.n:
                line += f"; you would need about {needed} items to see {_fmt(target)}"
            else:
                line += (
                    f"; about {needed} items detect a true {_fmt(target)} with "
                    f"{self.power:.0%} power, so a difference that large would usually show"
                )
        return line


def paired_comparison(
    a: Observations,
    b: Observations,
    *,
    item_col: str = "item_id",
    value_col: str = "value",
    metric: str = "value",
    label_a: str = "a",
    label_b: str = "b",
    n_boot: int = 5000,
    n_perm: int = 10000,
    alpha: float = 0.05,
    power: float = 0.8,
    tie_tol: float | None = None,
    nested: bool = True,
    seed: int = 0,
) -> PairedComparison:
    """Compare cell ``b`` with cell ``a`` on one metric, paired by item.

    Data handling: missing values (None/NaN) are dropped and counted (``missing_a/b``);
    repeats within an item are averaged; items present in only one cell are dropped and
    counted (``only_a/b``). ``a``/``b`` take any :data:`Observations` form; for DataFrames
    ``item_col`` and ``value_col`` name the columns (other columns, e.g. ``repeat``, are
    ignored: rows sharing an item are its repeats).

    One procedure gives the p-value, the interval and the verdict (all on ``d = b - a``
    per item, the unit that is independent from item to item):

    * ``p_value``: two-sided paired sign-flip permutation test of mean difference 0,
      statistic |sum d|. Exact (every sign vector) when n <= ``EXACT_MAX_N``; otherwise
      ``n_perm`` seeded random sign vectors with the +1 correction, p = (1 + #extreme) /
      (n_perm + 1). Because sum d_i^2 is the same under every sign vector, this is also the
      permutation test of the paired t statistic: exact when the differences are symmetric,
      and asymptotically valid for the mean when they are not (Janssen 1999).
    * ``ci_low``/``ci_high``: the same test inverted, i.e. every shift delta for which the
      test of d - delta does not reject at ``alpha``. Its ends are order statistics of the
      sign vectors' subset means (Hartigan 1969), computed from the very numbers the
      p-value counts, so ``ci_low > 0 or ci_high < 0`` holds exactly when ``p_value <=
      alpha``. ``None`` when n items can never reach alpha (fewer than 6 at 0.05).
    * Repeats: an item's repeats are averaged before anything is resampled or permuted, so
      within-item (repeat) noise enters once, through each item's mean. The earlier nested
      bootstrap resampled repeats as well as items and so counted that noise twice (its
      95% interval covered 98-99%). ``n_boot`` and ``nested`` are accepted for
      compatibility and ignored.
    * ``tie_tol`` (relative): differences within ``tie_tol * scale`` are ties, where
      ``scale`` is the largest |item mean| or |difference|, both in ``wins/ties/losses``
      and when the test compares a permuted statistic with the observed one. Default: 16
      (n + max_repeats) machine epsilons, a bound on the rounding of item means, their
      differences and the subset means, so only differences equal up to floating point are
      tied: (0.1 + 0.2) - 0.3 is a tie, a genuine 1e-10 beside a 1.0 is not (the old
      absolute tolerance of about 1e-9 tied it and gave p = 0.151 for 2/2^16). Relative, so
      rescaling the metric (cost in dollars or cents) changes nothing.
    * ``effect_size``: Cohen's d_z = mean_diff / sd_diff (sd with ddof=1).
    * ``mde``: the smallest true difference this test detects with ``power`` at n and
      sd_diff (normal differences; see :func:`sign_flip_power`); ``None`` when n items
      cannot reach alpha. ``power_method`` says which computation was used.

    Deterministic for a given ``seed`` (only the Monte Carlo branch draws).
    """
    _check_alpha(alpha)
    cell_a = _collect(a, item_col, value_col)
    cell_b = _collect(b, item_col, value_col)
    items = [item for item in cell_a.values if item in cell_b.values]
    a_groups = [cell_a.values[i] for i in items]
    b_groups = [cell_b.values[i] for i in items]
    n = len(items)
    max_repeats = max((len(g) for g in a_groups + b_groups), default=0)
    base: dict[str, Any] = dict(
        metric=metric,
        label_a=label_a,
        label_b=label_b,
        n=n,
        alpha=alpha,
        power=power,
        only_a=len(cell_a.values) - n,
        only_b=len(cell_b.values) - n,
        missing_a=cell_a.n_missing,
        missing_b=cell_b.n_missing,
        max_repeats=max_repeats,
    )
    if n == 0:
        return PairedComparison(
            mean_a=None, mean_b=None, mean_diff=None, ci_low=None, ci_high=None,
            ci_method="none (no items)", p_value=None, p_method="none (no items)",
            wins=0, ties=0, losses=0, sd_diff=None, effect_size=None, mde=None,
            power_method="none (no items)", **base,
        )  # fmt: skip

    item_a = np.array([sum(g) / len(g) for g in a_groups])
    item_b = np.array([sum(g) / len(g) for g in b_groups])
    diffs = item_b - item_a
    mean_diff = float(diffs.mean())
    scale = float(max(np.abs(item_a).max(), np.abs(item_b).max(), np.abs(diffs).max()))
    rel = tie_tol if tie_tol is not None else 16.0 * (n + max_repeats) * np.finfo(float).eps
    tol = rel * scale

    null = _sign_flip(np.random.default_rng(seed), diffs, n_perm)
    extreme = null.count(0.0, mean_diff, tol) if mean_diff != 0 else null.total
    p_value = extreme / null.total
    p_floor = (2.0 if null.trivial == 0 else 1.0) / null.total
    # The interval's ends: the shift at which the count of extreme vectors first exceeds
    # the largest count with p <= alpha. Same numbers, same comparison as p_value above.
    j = _critical_count(null.total, alpha) + 1
    low, high = null.kth(j, upper=False) - tol, null.kth(j, upper=True) + tol
    ci_low: float | None = None
    ci_high: float | None = None
    if math.isfinite(low) and math.isfinite(high):
        ci_low, ci_high = low, high
        ci_method = null.ci_method
    else:
        ci_method = (
            f"none: with n = {n} the sign-flip test cannot reach p <= {alpha:g} "
            f"(smallest p = {p_floor:.3g}), so no shift is ever rejected"
        )

    sd_diff: float | None = None
    effect_size: float | None = None
    mde: float | None = None
    if n >= 2:
        sd = float(diffs.std(ddof=1))
        # Differences equal up to float noise count as zero spread.
        sd_diff = 0.0 if sd <= max(tol, 1e-12 * scale) else sd
        effect_size = mean_diff / sd_diff if sd_diff > 0 else None
        mde = minimum_detectable_effect(n, sd_diff, alpha, power)

    return PairedComparison(
        mean_a=float(item_a.mean()),
        mean_b=float(item_b.mean()),
        mean_diff=mean_diff,
        ci_low=ci_low,
        ci_high=ci_high,
        ci_method=ci_method,
        p_value=p_value,
        p_method=null.p_method,
        wins=int(np.count_nonzero(diffs > tol)),
        ties=int(np.count_nonzero(np.abs(diffs) <= tol)),
        losses=int(np.count_nonzero(diffs < -tol)),
        sd_diff=sd_diff,
        effect_size=effect_size,
        mde=mde,
        p_floor=p_floor,
        power_method=_power_method(n, alpha),
        tie_tolerance=tol,
        **base,
    )


def _power_method(n: int, alpha: float) -> str:
    if n < sign_flip_min_n(alpha):
        return f"none: {n} items can never reach p <= {alpha:g}"
    if n <= POWER_SIM_MAX_N:
        return (
            "exact sign-flip test on 8000 seeded normal data sets (power standard error <= 0.0045)"
        )
    return "paired t-test (the sign-flip test's large-n limit; 0.77-0.82 simulated, n >= 13)"


# --------------------------------------------------------------------------- multiplicity


def holm(p_values: Sequence[float] | ArrayLike) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    Sorted ascending, the i-th (1-based) of m p-values becomes
    max over j <= i of min(1, (m - j + 1) * p_(j)); the result is therefore monotone in the
    raw p-values, never below them, and capped at 1. Rejecting where adjusted <= alpha
    controls the family-wise error rate at alpha. Raises ``ValueError`` for NaN or values
    outside [0, 1].
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size == 0:
        return []
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must be numbers in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(x) for x in adjusted]


def compare_many(
    pairs: Mapping[K, tuple[Any, ...]],
    **options: Any,
) -> dict[K, PairedComparison]:
    """Run :func:`paired_comparison` for each entry and Holm-adjust the p-values as one family.

    ``pairs`` maps a key (a metric name, a ``(cell_a, cell_b)`` pair, ...) to ``(a, b)`` or
    ``(a, b, per_comparison_options)``. ``options`` go to every comparison; per-comparison
    options override them. When the key is a string and no ``metric`` is given, the key
    names the metric. Comparisons without a p-value (no items) are left out of the family.
    Each result carries ``p_adjusted`` and ``adjustment="holm (m=...)"``, and
    ``significant`` then uses the adjusted value (the intervals stay unadjusted, so a
    "beats" needs the adjusted p and the interval to agree).
    """
    results: dict[K, PairedComparison] = {}
    for key, entry in pairs.items():
        if len(entry) not in (2, 3):
            raise ValueError(f"pairs[{key!r}] must be (a, b) or (a, b, options)")
        kwargs = {**options, **(entry[2] if len(entry) == 3 else {})}
        if isinstance(key, str):
            kwargs.setdefault("metric", key)
        results[key] = paired_comparison(entry[0], entry[1], **kwargs)
    raw = {k: r.p_value for k, r in results.items() if r.p_value is not None}
    tested = list(raw)
    adjusted = holm(list(raw.values()))
    for k, p_adj in zip(tested, adjusted, strict=True):
        results[k] = replace(results[k], p_adjusted=p_adj, adjustment=f"holm (m={len(tested)})")
    return results


# --------------------------------------------------------------------------- reliability

#: Fewest complete items for which :func:`icc` reports a value. ICC(2,1) estimates the
#: between-item variance from n items (n - 1 degrees of freedom). With 2 items and 2 raters
#: its denominator MSR + (k - 1 - k/n) MSE + k MSC / n loses the MSE term, so the estimate
#: is unbounded below (two items gave -3.82); from 3 items on it is bounded below by
#: -1 / (k - 1 - k/n). Three is a floor, not a recommendation: a reliability study wants
#: dozens of items (Koo & Li 2016 suggest at least 30).
ICC_MIN_ITEMS = 3


def _matrix(matrix: ArrayLike) -> FloatArray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"expected an items x raters matrix, got shape {m.shape}")
    return m


def icc_with_reason(matrix: ArrayLike) -> tuple[float | None, str | None]:
    """:func:`icc` and, when it is ``None``, a sentence saying why (else ``None``)."""
    m = _matrix(matrix)
    complete = m[~np.isnan(m).any(axis=1)]
    n, k = complete.shape
    if k < 2:
        return None, f"ICC(2,1) needs at least 2 raters or repeats per item, got {k}"
    if n < ICC_MIN_ITEMS:
        return None, (
            f"ICC(2,1) needs at least {ICC_MIN_ITEMS} items rated by every rater; "
            f"{n} of {m.shape[0]} are complete"
        )
    grand = complete.mean()
    ss_rows = k * float(((complete.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((complete.mean(axis=0) - grand) ** 2).sum())
    ss_error = float(((complete - grand) ** 2).sum()) - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = max(ss_error, 0.0) / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    if denominator <= 1e-12 * max(1.0, float((complete**2).mean())):
        return None, "ICC(2,1) is undefined: the scores do not vary (0/0)"
    return (msr - mse) / denominator, None


def icc(matrix: ArrayLike) -> float | None:
    """ICC(2,1): two-way random effects, absolute agreement, single rater (Shrout & Fleiss).

    ``matrix`` is items x raters (rows are items; columns are judges, or repeats of one
    judge); a DataFrame works. Items with any missing value (NaN/None) are dropped, since
    the two-way ANOVA needs a complete table. ``None`` when fewer than ``ICC_MIN_ITEMS``
    (3) complete items or 2 raters remain, or when every value is identical (the ratio is
    0/0); :func:`icc_with_reason` says which.

    ICC(2,1) = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n).
    """
    return icc_with_reason(matrix)[0]


def krippendorff_alpha(
    matrix: ArrayLike, level: Literal["nominal", "ordinal", "interval"] = "interval"
) -> float | None:
    """Krippendorff's alpha for an items x raters matrix; NaN/None marks a missing rating.

    (Krippendorff writes coders as rows; transpose such data.) Only items with at least two
    ratings are pairable; the rest are ignored. ``level`` picks the difference function:
    ``"interval"`` (squared difference), ``"ordinal"`` (squared difference of mid-ranks of
    the pooled pairable values, Krippendorff's ordinal metric) or ``"nominal"`` (0/1).
    alpha = 1 - D_o / D_e. ``None`` when fewer than 2 pairable values exist or there is no
    variation at all (D_e = 0).
    """
    m = _matrix(matrix)
    present = ~np.isnan(m)
    per_item = present.sum(axis=1)
    pairable = per_item >= 2
    m, present, per_item = m[pairable], present[pairable], per_item[pairable]
    values = m[present]
    total = int(values.size)
    if total < 2:
        return None
    if level == "nominal":
        _, codes = np.unique(values, return_inverse=True)
        rows = np.nonzero(present)[0]
        cells, cell_counts = np.unique(np.stack([rows, codes.ravel()]), axis=1, return_counts=True)
        per_row_sq = np.zeros(m.shape[0])
        np.add.at(per_row_sq, cells[0], cell_counts.astype(np.float64) ** 2)
        # Ordered pairs of differing values: m_u^2 - sum_c n_uc^2 (within), n^2 - sum n_c^2.
        observed = float(((per_item**2 - per_row_sq) / (per_item - 1)).sum())
        _, totals = np.unique(values, return_counts=True)
        expected = float(total**2 - (totals.astype(np.float64) ** 2).sum())
    elif level in ("interval", "ordinal"):
        if level == "ordinal":
            ranked = np.full(m.shape, np.nan)
            ranked[present] = sps.rankdata(values, method="average")
            m, values = ranked, ranked[present]
        filled = np.where(present, m, 0.0)
        s1, s2 = filled.sum(axis=1), (filled**2).sum(axis=1)
        # Sum over ordered pairs (i != j) of (v_i - v_j)^2 equals 2 (m sum v^2 - (sum v)^2).
        observed = float((2.0 * (per_item * s2 - s1**2) / (per_item - 1)).sum())
        expected = 2.0 * (total * float((values**2).sum()) - float(values.sum()) ** 2)
    else:
        raise ValueError(f"level must be nominal, ordinal or interval, got {level!r}")
    if expected <= 1e-12 * max(1.0, abs(observed)):
        return None
    # D_o = observed / n, D_e = expected / (n (n - 1)).
    return 1.0 - (total - 1) * observed / expected


def spearman(x: ArrayLike, y: ArrayLike) -> float | None:
    """Spearman's rank correlation, ties given average ranks (scipy's ``spearmanr``).

    Pairs where either value is NaN/None are dropped. ``None`` when fewer than 2 pairs
    remain or either variable is constant (where scipy would warn and return NaN).
    """
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.size != ya.size:
        raise ValueError(f"x and y differ in length: {xa.size} != {ya.size}")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[keep], ya[keep]
    if xa.size < 2 or np.all(xa == xa[0]) or np.all(ya == ya[0]):
        return None
    return float(np.clip(sps.spearmanr(xa, ya)[0], -1.0, 1.0))
