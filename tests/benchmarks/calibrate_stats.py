"""Calibration of the A/B statistics on synthetic data with planted effects (seeded).

    python -m tests.benchmarks.calibrate_stats [--reps 1000] [--quick]

Prints, for :func:`codi_eval.analysis.stats.paired_comparison` at alpha = 0.05:

* false-positive rate (no planted effect) and 95% CI coverage (planted effect +0.3) at
  n = 20 and n = 60, without repeats (normal and skewed differences) and with repeats
  (planted item, item-by-cell and repeat variance components; equal and unequal repeats);
* how often the verdict ("p <= alpha") and the interval ("excludes 0") disagree;
* power at the reported minimum detectable effect for n = 3..20, 25, 30, 40, 60 (MDE for
  the true SD of the differences, data drawn with that true difference), with the t-test's
  rejection rate on the same data sets to show what is sampling noise;
* the coverage of ``bootstrap_ci`` (BCa) for a mean at n = 20, for comparison.

Seeds differ from the ones the module's power simulation uses, so the power figures are an
independent check. Not a test: numbers go to BENCHMARKS.md ("Statistics calibration").
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as sps

from codi_eval.analysis.stats import (
    bootstrap_ci,
    minimum_detectable_effect,
    paired_comparison,
    sign_flip_min_n,
)

ALPHA = 0.05
EFFECT = 0.3
Cells = tuple[Any, Any]


def no_repeats(skewed: bool) -> Callable[[np.random.Generator, int, float], Cells]:
    """One score per item and cell: shared item difficulty N(0, 1), per-cell noise
    N(0, 0.5^2) and an item-by-cell effect, normal N(0, 0.5^2) or skewed 0.5 (Exp(1) - 1)
    (skewness of the differences ~ 1)."""

    def draw(rng: np.random.Generator, n: int, effect: float) -> Cells:
        item = rng.normal(0.0, 1.0, n)
        u = 0.5 * (rng.exponential(1.0, n) - 1.0) if skewed else rng.normal(0.0, 0.5, n)
        a = item + rng.normal(0.0, 0.5, n)
        b = item + effect + u + rng.normal(0.0, 0.5, n)
        return list(a), list(b)

    return draw


def with_repeats(unequal: bool) -> Callable[[np.random.Generator, int, float], Cells]:
    """Planted variance components: item difficulty sd 1 (shared by both cells), item-by-cell
    effect sd 0.4, repeat noise sd 0.6; 3 repeats per item and cell, or 1-4 (unequal) with
    10% of the scores missing (None)."""

    def draw(rng: np.random.Generator, n: int, effect: float) -> Cells:
        item = rng.normal(0.0, 1.0, n)
        u = rng.normal(0.0, 0.4, n)
        cells: list[list[tuple[int, int, float | None]]] = [[], []]
        for side, shift in ((0, np.zeros(n)), (1, effect + u)):
            for i in range(n):
                k = int(rng.integers(1, 5)) if unequal else 3
                for r in range(k):
                    value: float | None = float(item[i] + shift[i] + rng.normal(0.0, 0.6))
                    if unequal and rng.random() < 0.1:
                        value = None
                    cells[side].append((i, r, value))
        return cells[0], cells[1]

    return draw


SCENARIOS = {
    "no repeats, normal": no_repeats(skewed=False),
    "no repeats, skewed": no_repeats(skewed=True),
    "3 repeats, variance components": with_repeats(unequal=False),
    "1-4 repeats, 10% missing": with_repeats(unequal=True),
}


def se(p: float, reps: int) -> float:
    return math.sqrt(p * (1.0 - p) / reps)


def calibration(reps: int, sizes: list[int]) -> None:
    print(f"## False positives and coverage (alpha = {ALPHA}, {reps} experiments per cell)\n")
    print("| scenario | n | false-positive rate | coverage of +0.3 | disagreements | s |")
    print("|---|---:|---:|---:|---:|---:|")
    for s_index, (name, draw) in enumerate(SCENARIOS.items()):
        for n in sizes:
            start = time.perf_counter()
            rejected = covered = disagree = 0
            for rep in range(reps):
                for effect in (0.0, EFFECT):
                    rng = np.random.default_rng([7, s_index, n, rep, int(effect > 0)])
                    a, b = draw(rng, n, effect)
                    r = paired_comparison(a, b, alpha=ALPHA, seed=rep)
                    assert r.p_value is not None and r.ci_low is not None and r.ci_high is not None
                    disagree += (r.p_value <= ALPHA) != r.ci_excludes_zero
                    if effect == 0.0:
                        rejected += r.p_value <= ALPHA
                    else:
                        covered += r.ci_low <= effect <= r.ci_high
            fpr, cov = rejected / reps, covered / reps
            print(
                f"| {name} | {n} | {fpr:.3f} ± {se(fpr, reps):.3f} | {cov:.3f} ± "
                f"{se(cov, reps):.3f} | {disagree} of {2 * reps} | "
                f"{time.perf_counter() - start:.0f} |"
            )
    print()


def power(reps: int, sizes: list[int]) -> None:
    print(f"## Power at the reported MDE (target 0.80, {reps} experiments per n)\n")
    print("| n | MDE (SD units) | sign-flip power | t-test, same data | message |")
    print("|---:|---:|---:|---:|---|")
    for n in sizes:
        mde = minimum_detectable_effect(n, 1.0, ALPHA, 0.8)
        effect = mde if mde is not None else 1.5  # n too small: any large effect will do
        hits = t_hits = 0
        last = None
        for rep in range(reps):
            diffs = np.random.default_rng([11, n, rep]).normal(effect, 1.0, n)
            last = paired_comparison([0.0] * n, list(diffs), alpha=ALPHA, seed=rep)
            hits += last.p_value is not None and last.p_value <= ALPHA
            t_hits += float(sps.ttest_1samp(diffs, 0.0).pvalue) <= ALPHA
        pw, t_pw = hits / reps, t_hits / reps
        note = ""
        if mde is None and last is not None:
            note = last.summary().split(": ", 1)[-1].split("): ", 1)[-1]
        shown = f"{mde:.3f}" if mde is not None else "none"
        print(f"| {n} | {shown} | {pw:.3f} ± {se(pw, reps):.3f} | {t_pw:.3f} | {note} |")
    print(f"\nsign_flip_min_n({ALPHA}) = {sign_flip_min_n(ALPHA)}\n")


def bootstrap_coverage(reps: int) -> None:
    print(f"## bootstrap_ci (BCa, n_boot=2000) coverage of a mean, n = 20, {reps} samples\n")
    print("| data | coverage |")
    print("|---|---:|")
    for name, sample in (
        ("normal", lambda g: g.normal(0.0, 1.0, 20)),
        ("skewed (Exp(1))", lambda g: g.exponential(1.0, 20) - 1.0),
    ):
        covered = 0
        for rep in range(reps):
            ci = bootstrap_ci(sample(np.random.default_rng([13, rep])), n_boot=2000, seed=rep)
            covered += ci.low is not None and ci.high is not None and ci.low <= 0.0 <= ci.high
        cov = covered / reps
        print(f"| {name} | {cov:.3f} ± {se(cov, reps):.3f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="experiments per figure")
    parser.add_argument("--quick", action="store_true", help="200 experiments per figure")
    args = parser.parse_args()
    reps = 200 if args.quick else args.reps
    start = time.perf_counter()
    print(f"# Statistics calibration (seeded; alpha = {ALPHA})\n")
    calibration(reps, [20, 60])
    power(reps, [*range(3, 21), 25, 30, 40, 60])
    bootstrap_coverage(min(reps, 1000))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
