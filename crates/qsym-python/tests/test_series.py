"""q_kangaroo against published tables (OEIS), not against its own output."""

from __future__ import annotations

import re

import pytest

import q_kangaroo as qk


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert qk.__version__ == version("q-kangaroo")


def test_gmp_version_is_reported() -> None:
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", qk.gmp_version())


def test_a000041_partitions() -> None:
    assert qk.partition_counts(12) == [1, 1, 2, 3, 5, 7, 11, 15, 22, 30, 42, 56, 77]
    assert qk.partition_count(100) == 190569292
    assert qk.partition_count(1000) == 24061467864032622473692149727991


def test_partition_count_is_a_python_int() -> None:
    p = qk.partition_count(500)
    assert type(p) is int
    assert p == 2300165032574323995027


def test_a000594_ramanujan_tau() -> None:
    assert qk.ramanujan_tau(10) == [
        1, -24, 252, -1472, 4830, -6048, -16744, 84480, -113643, -115920,
    ]


def test_a000009_distinct_parts() -> None:
    # (-q;q)_inf
    assert qk.qpochhammer_ratio(-1, 1, None, 1) == [1]
    distinct = [1, 1, 1, 2, 2, 3, 4, 5, 6, 8, 10, 12, 15]
    overpartitions = [1, 2, 4, 8, 14, 24, 40, 64, 100, 154, 232, 344, 504]
    assert qk.qpochhammer_ratio(-1, 1, None, 13) == overpartitions
    assert qk.eta_quotient([(2, 1), (1, -1)], 13) == distinct


def test_finite_pochhammer_by_hand() -> None:
    # (q;q)_2 = 1 - q - q^2 + q^3
    assert qk.qpochhammer(1, 1, 2, 6) == [1, -1, -1, 1, 0, 0]


def test_big_coefficients_are_exact() -> None:
    c = 10**30 + 7
    # (c q;q)_1 = 1 - c q
    assert qk.qpochhammer(c, 1, 1, 3) == [1, -c, 0]


def test_theta_series() -> None:
    t3 = qk.theta3(26)
    assert [i for i, c in enumerate(t3) if c] == [0, 1, 4, 9, 16, 25]
    assert qk.theta4(10) == [1, -2, 0, 0, 2, 0, 0, 0, 0, -2]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: qk.qpochhammer_ratio(1, 0, None, 5), "converges only"),
        (lambda: qk.eta_quotient([(0, 1)], 5), "m >= 1"),
        (lambda: qk.theta3(10**7), "at most"),
        (lambda: qk.ramanujan_tau(-1), "non-negative"),
    ],
)
def test_bad_input_raises_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
