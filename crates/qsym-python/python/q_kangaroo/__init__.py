"""Exact q-series computation on GMP integers.

Every series function returns the list of integer coefficients of
``q^0 .. q^(order-1)``.
"""

from __future__ import annotations

import os
import sys

from ._core import (
    __version__,
    eta_quotient,
    gmp_version,
    partition_count,
    partition_counts,
    qpochhammer,
    qpochhammer_ratio,
    theta3,
    theta4,
)

__all__ = [
    "__version__",
    "eta_quotient",
    "gmp_version",
    "partition_count",
    "partition_counts",
    "qpochhammer",
    "qpochhammer_ratio",
    "ramanujan_tau",
    "theta3",
    "theta4",
]


def ramanujan_tau(n: int) -> list[int]:
    """Return [tau(1), ..., tau(n)], the coefficients of q (q;q)_inf^24."""
    if n < 0:
        raise ValueError("n must be non-negative")
    return eta_quotient([(1, 24)], n)
