"""Analysis: statistics over experiment results (frames and reports join later)."""

from codi_eval.analysis.stats import (
    ConfidenceInterval,
    PairedComparison,
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
