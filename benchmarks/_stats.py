"""The statistics every benchmark prints: medians over rounds, and ratios of two
implementations measured in the same round (steadier than ratios of medians on a machine
whose speed drifts)."""

from __future__ import annotations

import statistics


def med(values: list, key: str = "seconds") -> float:
    """The median of ``key`` over the rounds that produced a result (None: a failed run)."""
    values = [v[key] for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def paired(
    numerators: list, denominators: list, key: str = "seconds"
) -> tuple[float, float, float]:
    """Median, min and max over the rounds of ``numerator / denominator`` of one round."""
    ratios = [x[key] / y[key] for x, y in zip(numerators, denominators) if x and y]
    if not ratios:
        return (float("nan"),) * 3
    return statistics.median(ratios), min(ratios), max(ratios)


def paired_ratio(res: dict, a: str, b: str, key: str = "seconds") -> tuple[float, float, float]:
    """:func:`paired` of implementations ``a`` and ``b`` in ``{impl: [rounds]}``."""
    return paired(res[a], res[b], key)
