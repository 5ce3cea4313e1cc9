"""Statistics that turn an experiment into a decision.

Pure functions over numbers: no I/O, no global state, every random draw seeded. The centre
is :func:`paired_comparison`, which compares two cells of an experiment on one metric over
the same items and says, in one line, whether one beats the other, by how much, how sure
we are, and how many items it would take to see a smaller difference.

Conventions
-----------
* Differences are always ``b - a``: a positive ``mean_diff`` means cell *b* scored higher.
* "Undefined" is ``None``, never ``NaN``: a mean of no items, a confidence interval from one
  item, an effect size when every difference is equal.
* Where scipy computes the same number (Student-t and non-central t distributions, ranks,
  Spearman's rho, the BCa bootstrap) it is called rather than re-implemented.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps  # type: ignore[import-untyped]  # no stubs; mypy flags it once

__all__ = [
    "ConfidenceInterval",
    "PairedComparison",
    "bootstrap_ci",
    "compare_many",
    "holm",
    "icc",
    "krippendorff_alpha",
    "mean_ci",
    "minimum_detectable_effect",
    "paired_comparison",
    "paired_t_power",
    "required_n",
    "spearman",
    "t_quantile",
]

FloatArray = NDArray[np.float64]
K = TypeVar("K", bound=Hashable)

#: Upper bound on the number of floats held by one vectorised resampling block (~16 MB).
_BLOCK = 2_000_000
#: Largest n for which the sign-flip test enumerates all 2**n sign vectors.
EXACT_MAX_N = 16


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


def minimum_detectable_effect(
    n: int, sd_diff: float, alpha: float = 0.05, power: float = 0.8
) -> float | None:
    """Smallest true mean difference the two-sided paired t-test detects with ``power``.

    In the metric's own units (d_z times ``sd_diff``). ``None`` when it is undefined: fewer
    than 2 pairs, or ``sd_diff`` not positive.
    """
    if n < 2 or not sd_diff > 0:
        return None
    lo, hi = 0.0, 1.0
    while paired_t_power(hi, n, alpha) < power:
        lo, hi = hi, hi * 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if paired_t_power(mid, n, alpha) < power:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-9 * hi:
            break
    return hi * sd_diff


def required_n(
    effect: float, sd_diff: float, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Smallest number of paired items for the paired t-test to detect ``effect`` with ``power``.

    ``effect`` is a mean difference in the metric's units (its sign is ignored). Returns
    ``None`` when ``sd_diff`` is not positive (no variability to plan from). Raises
    ``ValueError`` for a zero effect.
    """
    if effect == 0:
        raise ValueError("effect must be non-zero")
    if not sd_diff > 0:
        return None
    d = abs(effect) / sd_diff
    z = float(sps.norm.ppf(1.0 - alpha / 2.0) + sps.norm.ppf(power))
    n = max(2, math.ceil((z / d) ** 2))
    if n > 10**8:  # t and normal agree; the normal-theory answer is the answer
        return n
    while paired_t_power(d, n, alpha) < power:
        n += max(1, n // 50)
    while n > 2 and paired_t_power(d, n - 1, alpha) >= power:
        n -= 1
    return n


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


def _padded(groups: list[list[float]]) -> tuple[FloatArray, NDArray[np.int64]]:
    counts = np.array([len(g) for g in groups], dtype=np.int64)
    width = int(counts.max()) if counts.size else 0
    out = np.zeros((len(groups), max(width, 1)), dtype=np.float64)
    for i, g in enumerate(groups):
        out[i, : len(g)] = g
    return out, counts


def _resampled_means(
    rng: np.random.Generator, padded: FloatArray, counts: NDArray[np.int64], idx: NDArray[np.int64]
) -> FloatArray:
    """Per (replicate, item) mean of repeats drawn with replacement within the chosen items."""
    k = counts[idx]
    width = padded.shape[1]
    pick = (rng.random((*idx.shape, width)) * k[..., None]).astype(np.int64)
    drawn = padded[idx[..., None], pick]
    used = np.arange(width) < k[..., None]
    return np.where(used, drawn, 0.0).sum(axis=-1) / k


def _bootstrap_mean_diff(
    rng: np.random.Generator,
    diffs: FloatArray,
    a_groups: list[list[float]],
    b_groups: list[list[float]],
    n_boot: int,
    nested: bool,
) -> FloatArray:
    n = diffs.size
    a_pad, a_k = _padded(a_groups)
    b_pad, b_k = _padded(b_groups)
    width = max(a_pad.shape[1], b_pad.shape[1])
    block = max(1, _BLOCK // (n * width))
    out = []
    for start in range(0, n_boot, block):
        idx = rng.integers(0, n, size=(min(block, n_boot - start), n))
        if nested:
            d = _resampled_means(rng, b_pad, b_k, idx) - _resampled_means(rng, a_pad, a_k, idx)
            out.append(d.mean(axis=1))
        else:
            out.append(diffs[idx].mean(axis=1))
    return np.concatenate(out)


def _sign_flip_p(rng: np.random.Generator, diffs: FloatArray, n_perm: int) -> tuple[float, str]:
    """Two-sided paired sign-flip test of mean difference 0; statistic |sum of diffs|."""
    n = diffs.size
    observed = abs(float(diffs.sum()))
    tol = 1e-9 * float(np.abs(diffs).sum()) + 1e-300  # float noise must not break ties
    if n <= EXACT_MAX_N:
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        signs = ((codes >> np.arange(n)) & 1) * 2.0 - 1.0
        extreme = int(np.count_nonzero(np.abs(signs @ diffs) >= observed - tol))
        return extreme / 2**n, "exact sign-flip"
    block = max(1, _BLOCK // n)
    extreme = 0
    for start in range(0, n_perm, block):
        m = min(block, n_perm - start)
        signs = rng.integers(0, 2, size=(m, n)).astype(np.float64) * 2.0 - 1.0
        extreme += int(np.count_nonzero(np.abs(signs @ diffs) >= observed - tol))
    return (extreme + 1) / (n_perm + 1), f"monte carlo sign-flip (n_perm={n_perm})"


def _fmt(x: float, signed: bool = True) -> str:
    text = f"{x:+.3g}" if signed else f"{x:.3g}"
    return text.replace("e-0", "e-").replace("e+0", "e+")


def _fmt_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


@dataclass(frozen=True)
class PairedComparison:
    """Cell *b* against cell *a* on one metric over the items both cells scored.

    All differences are ``b - a``. Means are over paired items of each item's mean over
    repeats, so ``mean_diff == mean_b - mean_a``. Fields that cannot be computed from the
    data are ``None`` (no items: every statistic; one item: interval and SD; zero SD:
    effect size and MDE).
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

    @property
    def significant(self) -> bool:
        """True when the (Holm-adjusted, if set) p-value is at most ``alpha``."""
        p = self.p_adjusted if self.p_adjusted is not None else self.p_value
        return p is not None and p <= self.alpha

    def needed_n(self, target_effect: float, power: float | None = None) -> int | None:
        """Paired items needed to detect a true difference of ``target_effect`` (metric units).

        Uses this comparison's ``sd_diff`` and ``alpha`` and the given ``power`` (default
        ``self.power``). ``None`` when ``sd_diff`` is unknown or zero.
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

        Significant: ``"v2 beats v1 by +0.06 quality (95% CI +0.02..+0.1, p = 0.004, n =
        150)"`` ("trails" when b is lower; wording assumes higher is better). Otherwise
        ``"no detectable difference ..."`` with the minimum detectable effect and the items
        needed to see ``target_effect`` (default: the observed difference).
        """
        a, b, metric = self.label_a, self.label_b, self.metric
        if self.n == 0 or self.mean_diff is None:
            return (
                f"no paired items for {metric} between {b} and {a} "
                f"(items only in {a}: {self.only_a}, only in {b}: {self.only_b}, "
                f"missing values: {self.missing_a + self.missing_b})"
            )
        level = f"{100 * (1 - self.alpha):g}% CI"
        ci = (
            f"{level} {_fmt(self.ci_low)}..{_fmt(self.ci_high)}"
            if self.ci_low is not None and self.ci_high is not None
            else f"no {level} from one item"
        )
        p = _fmt_p(self.p_value) if self.p_value is not None else "p = n/a"
        if self.p_adjusted is not None:
            p += f", Holm {_fmt_p(self.p_adjusted).replace('p ', '', 1)}"
        stats = f"{ci}, {p}, n = {self.n}"
        if self.significant:
            verb = "beats" if self.mean_diff > 0 else "trails"
            return f"{b} {verb} {a} by {_fmt(self.mean_diff)} {metric} ({stats})"
        line = f"no detectable difference in {metric}: {b} vs {a} {_fmt(self.mean_diff)} ({stats})"
        if self.mde is not None:
            line += f"; detectable at {self.power:.0%} power: ±{_fmt(self.mde, signed=False)}"
        target = target_effect if target_effect is not None else self.mean_diff
        needed = self.needed_n(target) if target else None
        if needed is not None and target:
            line += f"; you would need about {needed} items to see {_fmt(target)}"
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
    tie_tol: float = 1e-9,
    nested: bool = True,
    seed: int = 0,
) -> PairedComparison:
    """Compare cell ``b`` with cell ``a`` on one metric, paired by item.

    Data handling: missing values (None/NaN) are dropped and counted (``missing_a/b``);
    repeats within an item are averaged; items present in only one cell are dropped and
    counted (``only_a/b``). ``a``/``b`` take any :data:`Observations` form; for DataFrames
    ``item_col`` and ``value_col`` name the columns (other columns, e.g. ``repeat``, are
    ignored: rows sharing an item are its repeats).

    Returned statistics (``b - a``):

    * ``ci_low``/``ci_high``: percentile bootstrap interval at ``1 - alpha`` over ``n_boot``
      resamples of items; when some item has several repeats and ``nested`` is true, repeats
      within each resampled item are resampled too (each cell separately). Two-level
      resampling counts within-item noise twice, so it is slightly conservative (Davison &
      Hinkley 1997, §3.8); ``nested=False`` resamples items only. Needs n >= 2.
    * ``p_value``: two-sided paired sign-flip permutation test (statistic |sum of diffs|);
      exact enumeration when n <= 16, else ``n_perm`` Monte Carlo flips with the +1
      correction, p = (1 + #extreme) / (n_perm + 1). n = 1 gives exactly 1.0.
    * ``wins``/``ties``/``losses``: items where b - a > ``tie_tol``, within it, below -it.
    * ``effect_size``: Cohen's d_z = mean_diff / sd_diff (sd with ddof=1).
    * ``mde``: smallest true difference a two-sided paired t-test at ``alpha`` detects with
      ``power`` given n and sd_diff (non-central t).

    Deterministic for a given ``seed``.
    """
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
            wins=0, ties=0, losses=0, sd_diff=None, effect_size=None, mde=None, **base,
        )  # fmt: skip

    item_a = np.array([sum(g) / len(g) for g in a_groups])
    item_b = np.array([sum(g) / len(g) for g in b_groups])
    diffs = item_b - item_a
    mean_diff = float(diffs.mean())
    boot_seed, perm_seed = np.random.SeedSequence(seed).spawn(2)
    p_value, p_method = _sign_flip_p(np.random.default_rng(perm_seed), diffs, n_perm)

    ci_low: float | None = None
    ci_high: float | None = None
    sd_diff: float | None = None
    effect_size: float | None = None
    mde: float | None = None
    ci_method = "none (needs 2 items)"
    if n >= 2:
        use_nested = nested and max_repeats > 1
        boot = _bootstrap_mean_diff(
            np.random.default_rng(boot_seed), diffs, a_groups, b_groups, n_boot, use_nested
        )
        low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
        # Clamp: when every resample is identical, rounding can put the bounds 1 ulp off.
        ci_low, ci_high = min(float(low), mean_diff), max(float(high), mean_diff)
        kind = "nested bootstrap (items, then repeats)" if use_nested else "bootstrap (items)"
        ci_method = f"percentile {kind}, n_boot={n_boot}"
        sd = float(diffs.std(ddof=1))
        # Differences equal up to float noise count as zero spread.
        sd_diff = 0.0 if sd <= 1e-12 * max(1.0, float(np.abs(diffs).max())) else sd
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
        p_method=p_method,
        wins=int(np.count_nonzero(diffs > tie_tol)),
        ties=int(np.count_nonzero(np.abs(diffs) <= tie_tol)),
        losses=int(np.count_nonzero(diffs < -tie_tol)),
        sd_diff=sd_diff,
        effect_size=effect_size,
        mde=mde,
        **base,
    )


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
    ``significant`` then uses the adjusted value.
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


def _matrix(matrix: ArrayLike) -> FloatArray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"expected an items x raters matrix, got shape {m.shape}")
    return m


def icc(matrix: ArrayLike) -> float | None:
    """ICC(2,1): two-way random effects, absolute agreement, single rater (Shrout & Fleiss).

    ``matrix`` is items x raters (rows are items; columns are judges, or repeats of one
    judge); a DataFrame works. Items with any missing value (NaN/None) are dropped, since
    the two-way ANOVA needs a complete table. ``None`` when fewer than 2 complete items or
    2 raters remain, or when every value is identical (the ratio is 0/0).

    ICC(2,1) = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n).
    """
    m = _matrix(matrix)
    m = m[~np.isnan(m).any(axis=1)]
    n, k = m.shape
    if n < 2 or k < 2:
        return None
    grand = m.mean()
    ss_rows = k * float(((m.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((m.mean(axis=0) - grand) ** 2).sum())
    ss_error = float(((m - grand) ** 2).sum()) - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = max(ss_error, 0.0) / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    if denominator <= 1e-12 * max(1.0, float((m**2).mean())):
        return None
    return (msr - mse) / denominator


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
