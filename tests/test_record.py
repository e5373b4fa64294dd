"""RECORD is read with ``installer``: every PEP 427 hash algorithm is legal,
weak ones and mismatches are not."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ci.sessions.publish_check import record_findings

INFO = "demo-1.0.dist-info"


def wheel_members(algorithm: str, *, tamper: bool = False) -> dict[str, bytes]:
    files = {"demo/__init__.py": b"x = 1\n", f"{INFO}/METADATA": b"Name: demo\nVersion: 1.0\n"}
    rows = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode()
        rows.append(f"{path},{algorithm}={digest},{len(data)}")
    rows.append(f"{INFO}/RECORD,,")
    members = dict(files)
    members[f"{INFO}/RECORD"] = ("\n".join(rows) + "\n").encode()
    if tamper:
        members["demo/__init__.py"] = b"x = 2\n"
    return members


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512", "blake2b", "sha3_256"])
def test_every_strong_algorithm_is_accepted(algorithm: str) -> None:
    (finding,) = record_findings("demo.whl", wheel_members(algorithm), INFO)
    assert finding.status == "pass", finding.detail


@pytest.mark.parametrize("algorithm", ["md5", "sha1"])
def test_weak_algorithms_are_rejected(algorithm: str) -> None:
    (finding,) = record_findings("demo.whl", wheel_members(algorithm), INFO)
    assert finding.status == "fail" and f"hash algorithm {algorithm!r} is not allowed" in finding.detail


def test_a_changed_member_fails() -> None:
    (finding,) = record_findings("demo.whl", wheel_members("sha512", tamper=True), INFO)
    assert finding.status == "fail" and "demo/__init__.py: hash/size differ from RECORD" in finding.detail


def test_an_unlisted_member_and_a_missing_one_fail() -> None:
    members = wheel_members("sha256")
    members["demo/extra.py"] = b""
    del members[f"{INFO}/METADATA"]
    (finding,) = record_findings("demo.whl", members, INFO)
    assert "demo/extra.py is not in RECORD" in finding.detail
    assert f"RECORD lists {INFO}/METADATA, which is not in the wheel" in finding.detail


def test_garbage_record_is_a_finding_not_a_traceback() -> None:
    members = wheel_members("sha256")
    members[f"{INFO}/RECORD"] = b"\xff\xfe not csv"
    (finding,) = record_findings("demo.whl", members, INFO)
    assert finding.status == "fail"
