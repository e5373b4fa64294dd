"""The GitHub workflows run exactly the noxfile's sessions (parity), are
hardened, and ``nox -s lint-workflows`` enforces both.

Every check runs on the real workflow files and the real ``nox -l --json``;
the negative tests mutate a copy of a real workflow and expect the named
rule to fire.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, assert_clean_failure, assert_ok, copy_repo, run_nox

from ci.blocks import workflows as wf
from ci.core.config import load_config

CI = "ci.yml"
RELEASE = "release.yml"


@pytest.fixture(scope="session")
def loader() -> Callable[[Path], Any]:
    """PyYAML is one of the engine's own libraries (the 'nox' group)."""
    return wf.load_yaml


@pytest.fixture(scope="session")
def lister() -> wf.SessionLister:
    return wf.nox_lister(REPO)


@pytest.fixture(scope="session")
def workflows(loader: Callable[[Path], Any]) -> dict[str, dict[str, Any]]:
    return wf.load_workflows(REPO, loader)


def texts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in wf.workflow_files(REPO)}


def mutated(tmp_path: Path, loader: Callable[[Path], Any], name: str, old: str, new: str,
            count: int = 1) -> tuple[dict[str, dict[str, Any]], str]:
    """All workflows, with ``old`` replaced by ``new`` in ``name``."""
    folder = tmp_path / wf.WORKFLOWS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for fname, text in texts().items():
        if fname == name:
            assert text.count(old) >= count, f"{old!r} not in {name}"
            text = text.replace(old, new, count)
        (folder / fname).write_text(text, encoding="utf-8")
    return wf.load_workflows(tmp_path, loader), (folder / name).read_text(encoding="utf-8")


def names(lister: wf.SessionLister, *args: str) -> set[str]:
    return set(wf.session_names(lister(args)))


# ---------------------------------------------------------------- parity


def test_parity_holds_for_the_real_workflows(workflows: dict[str, Any], lister: wf.SessionLister) -> None:
    parity = wf.check_parity(workflows, lister)
    assert parity.problems == []
    # Both directions, against nox's own listing.
    assert parity.sessions_run_by(CI) == names(lister, "-t", "ci", "ci-gate")
    assert parity.sessions_run_by(RELEASE) == names(lister, "-t", "release")
    assert names(lister, "-t", "ci")  # the plan is not vacuous


def test_ci_sessions_come_from_the_noxfile_not_a_list(workflows: dict[str, Any],
                                                      lister: wf.SessionLister) -> None:
    parity = wf.check_parity(workflows, lister)
    ci_runs = [r for r in parity.runs if r.workflow == CI]
    assert ci_runs and all(r.plan is not None for r in ci_runs)
    assert {r.plan for r in ci_runs} == {("-t", "ci"), ("-t", "ci-gate")}
    # No session name is written anywhere in ci.yml's scripts.
    scripts = " ".join(str(s.get("run", "")) for j in workflows[CI]["jobs"].values()
                       for s in j.get("steps", []))
    for session in names(lister, *wf.ALL_SESSIONS):
        assert re.search(rf"nox -s {re.escape(session)}\b", scripts) is None


def test_release_runs_publish_check_with_release_flag(workflows: dict[str, Any],
                                                      lister: wf.SessionLister) -> None:
    runs = {r.job: r for r in wf.check_parity(workflows, lister).runs if r.workflow == RELEASE}
    assert runs["publish-check"].sessions == ("publish-check",)
    assert runs["publish-check"].posargs == ("--release",)


@pytest.mark.parametrize(("old", "new", "expected"), [
    # A job that does the work itself instead of through nox.
    ('run: nox -s "$SESSION"', "run: pip install x && pytest",
     ["`pip install x`", "`pytest`", "is tagged ci/ci-gate"]),
    # A session the noxfile does not have.
    ('run: nox -s "$SESSION"', "run: nox -s no-such-session", ["'no-such-session'", "does not list"]),
    # A hand-kept matrix instead of the plan.
    ("nox: ${{ fromJSON(needs.plan.outputs.sessions) }}", "nox: [{session: rust-tests}]",
     ["hand-kept list", "is tagged ci/ci-gate"]),
    # The plan asks for the wrong tag: CI sessions are run by no job.
    ('echo "sessions=$(nox -l --json -t ci)"', 'echo "sessions=$(nox -l --json -t test)"',
     ["'sdist' is tagged ci/ci-gate", "'lint-workflows' is tagged ci/ci-gate"]),
    # A third-party action could run anything.
    ("uses: taiki-e/install-action@542cebaaed782771e619bd5609d97659d109c492 # v2.66.7",
     "uses: some/build-action@542cebaaed782771e619bd5609d97659d109c492 # v2.66.7",
     ["uses some/build-action"]),
    # A python script step.
    ("      - name: Install GMP\n        run: |",
     "      - name: Install GMP\n        shell: python\n        run: |", ["'python' script"]),
])
def test_parity_rejects_mutated_ci(tmp_path: Path, loader: Callable[[Path], Any], lister: wf.SessionLister,
                                   old: str, new: str, expected: list[str]) -> None:
    workflows, _ = mutated(tmp_path, loader, CI, old, new)
    problems = "\n".join(str(p) for p in wf.check_parity(workflows, lister).problems)
    for needle in expected:
        assert needle in problems, problems


def test_parity_rejects_untagged_session_in_release(tmp_path: Path, loader: Callable[[Path], Any],
                                                    lister: wf.SessionLister) -> None:
    workflows, _ = mutated(tmp_path, loader, RELEASE, "run: nox -s sdist", "run: nox -s coverage")
    problems = [str(p) for p in wf.check_parity(workflows, lister).problems]
    assert any("'coverage', which is not tagged release" in p for p in problems), problems
    assert any("'sdist' is tagged release" in p and "no job runs it" in p for p in problems), problems


# ---------------------------------------------------------------- hardening


def test_real_workflows_are_hardened(workflows: dict[str, Any]) -> None:
    for name, text in texts().items():
        assert wf.check_hardening(name, workflows[name], text) == []
    assert "zizmor: ignore" not in "".join(texts().values())


@pytest.mark.parametrize(("name", "old", "new", "expected"), [
    (CI, "actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2",
     "actions/checkout@v6", "not a full commit SHA"),
    (CI, "actions/setup-python@e797f83bcb11b83ae66e0230d6156d7c80228e7c # v6.0.0",
     "actions/setup-python@e797f83bcb11b83ae66e0230d6156d7c80228e7c", "no version comment"),
    (CI, "          persist-credentials: false\n", "", "persist-credentials: false"),
    (CI, "    timeout-minutes: 10\n", "", "no timeout-minutes"),
    (CI, "permissions: {}\n\nconcurrency", "permissions: write-all\n\nconcurrency", "permissions: write-all"),
    (CI, "      contents: read  # to check out the noxfile",
     "      contents: read  # to check out the noxfile\n      id-token: write", "id-token: write outside"),
    (CI, "      contents: read  # to check out the noxfile", "      contents: write", "contents: write"),
    (CI, "          save-if: ${{ github.ref == 'refs/heads/main' }}\n", "", "save-if"),
    (CI, 'run: nox -s "$SESSION"', "run: nox -s ${{ matrix.nox.session }}", "inside its script"),
    (CI, "  pull_request:\n", "  pull_request_target:\n", "pull_request_target"),
    (RELEASE, "          cache: false\n", "", "cache: false"),
    (RELEASE, '          python-version: "3.13"\n      - name: Set up Rust\n        run: |\n'
              "          rustup toolchain install stable --profile minimal\n          rustup default stable\n"
              "      - name: Install GMP",
     '          python-version: "3.13"\n      - name: Set up Rust\n        run: |\n'
     "          rustup toolchain install stable --profile minimal\n          rustup default stable\n"
     "      - uses: Swatinem/rust-cache@779680da715d629ac1d338a641029a2f4372abb5 # v2.8.2\n"
     "        with:\n          save-if: ${{ github.ref == 'refs/heads/main' }}\n"
     "      - name: Install GMP", "no caches in a release workflow"),
])
def test_hardening_rejects(tmp_path: Path, loader: Callable[[Path], Any], name: str, old: str, new: str,
                           expected: str) -> None:
    workflows, text = mutated(tmp_path, loader, name, old, new)
    problems = "\n".join(str(p) for p in wf.check_hardening(name, workflows[name], text))
    assert expected in problems, problems


# ---------------------------------------------------------------- structure


def test_release_publishes_only_after_the_gates(workflows: dict[str, Any]) -> None:
    jobs = workflows[RELEASE]["jobs"]
    assert wf.triggers(workflows[RELEASE]) == {"push": {"tags": ["v*"]}}
    builds = {"linux-wheel", "windows-gnu-wheel", "sdist"}
    assert set(jobs["publish-check"]["needs"]) == builds
    assert set(jobs["publish-rehearsal"]["needs"]) == builds
    publish = jobs["publish"]
    assert set(publish["needs"]) == {"publish-check", "publish-rehearsal"}
    assert publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    uses = [wf.action_name(s["uses"]) for s in publish["steps"]]
    assert uses == ["actions/download-artifact", "pypa/gh-action-pypi-publish"]
    assert "password" not in publish["steps"][1].get("with", {})  # trusted publishing, no token
    # id-token is granted nowhere else.
    for wname, w in workflows.items():
        for job_id, job in w["jobs"].items():
            if (wname, job_id) != (RELEASE, "publish"):
                assert "id-token" not in (job.get("permissions") or {}), (wname, job_id)
    # Every gate job sees the artifacts of every build job.
    for job_id in ("publish-check", "publish-rehearsal", "publish"):
        dl = [s for s in jobs[job_id]["steps"] if wf.action_name(s.get("uses", "")) == "actions/download-artifact"]
        assert dl and dl[0]["with"]["pattern"] == "dist-*" and dl[0]["with"]["merge-multiple"] is True
    for job_id in builds:
        up = [s for s in jobs[job_id]["steps"] if wf.action_name(s.get("uses", "")) == "actions/upload-artifact"]
        assert up and up[0]["with"]["name"] == f"dist-{job_id}"


def test_windows_wheel_builds_on_windows_with_msys2(workflows: dict[str, Any]) -> None:
    job = workflows[RELEASE]["jobs"]["windows-gnu-wheel"]
    assert job["runs-on"].startswith("windows")
    assert job["defaults"]["run"]["shell"] == "msys2 {0}"
    msys2 = [s for s in job["steps"] if wf.action_name(s.get("uses", "")) == "msys2/setup-msys2"]
    assert msys2 and "mingw-w64-x86_64-gmp" in msys2[0]["with"]["install"]
    native = load_config(REPO).native
    assert all(lib.msys2 in msys2[0]["with"]["install"] for lib in native if lib.msys2)


def test_ci_gate_runs_after_the_session_jobs_on_their_artifacts(workflows: dict[str, Any]) -> None:
    jobs = workflows[CI]["jobs"]
    assert wf.triggers(workflows[CI]) == {"push": {"branches": ["main"]}, "pull_request": None}
    assert set(jobs["gate"]["needs"]) == {"plan", "session"}
    dl = [s for s in jobs["gate"]["steps"] if wf.action_name(s.get("uses", "")) == "actions/download-artifact"]
    assert dl and dl[0]["with"]["pattern"] == "dist-*"
    up = [s for s in jobs["session"]["steps"] if wf.action_name(s.get("uses", "")) == "actions/upload-artifact"]
    assert any(s["with"]["name"] == "dist-${{ matrix.nox.session }}" for s in up)
    # Codecov's token is only visible to the job that runs no project code.
    for job_id, job in jobs.items():
        uses_codecov = any(wf.action_name(s.get("uses", "")) == "codecov/codecov-action" for s in job["steps"])
        assert uses_codecov == (job_id == "codecov")
        if uses_codecov:
            assert job.get("environment") == "codecov"
            assert not any("run" in s for s in job["steps"])


def test_python_versions_match_the_suite_config(workflows: dict[str, Any]) -> None:
    wanted = list(load_config(REPO).python_versions)
    seen = 0
    for w in workflows.values():
        for job in w["jobs"].values():
            for step in job.get("steps", []):
                if wf.action_name(step.get("uses", "")) != "actions/setup-python":
                    continue
                versions = str(step["with"]["python-version"]).split()
                if len(versions) > 1:  # jobs that test every interpreter
                    assert versions == wanted
                    seen += 1
    assert seen >= 3


# ---------------------------------------------------------------- the session


@pytest.mark.slow
def test_lint_workflows_session_passes_and_catches_a_bad_step(tmp_path: Path) -> None:
    ws = copy_repo(tmp_path / "repo")
    text = assert_ok(run_nox(ws, "-s", "lint-workflows"))
    assert "0 findings" in text and "0 problems" in text
    assert "schema            valid" in text

    ci = ws / wf.WORKFLOWS_DIR / CI
    ci.write_text(ci.read_text().replace('run: nox -s "$SESSION"', "run: pip install x && pytest", 1))
    text = assert_clean_failure(run_nox(ws, "-s", "lint-workflows"), "workflow lint failed", "`pytest`")


@pytest.mark.slow
def test_lint_workflows_session_fails_on_zizmor_and_schema_findings(tmp_path: Path) -> None:
    ws = copy_repo(tmp_path / "repo")
    # zizmor: an action pinned to a movable tag (unpinned-uses).
    ci = ws / wf.WORKFLOWS_DIR / CI
    ci.write_text(ci.read_text().replace(
        "Swatinem/rust-cache@779680da715d629ac1d338a641029a2f4372abb5 # v2.8.2", "Swatinem/rust-cache@v2", 1))
    # Schema: a job without runs-on (zizmor skips a file it cannot parse).
    release = ws / wf.WORKFLOWS_DIR / RELEASE
    release.write_text(release.read_text().replace("    runs-on: windows-2022\n", "", 1))
    out = assert_clean_failure(run_nox(ws, "-s", "lint-workflows"), "zizmor reported",
                               "does not match the GitHub workflow schema")
    assert "unpinned-uses" in out


@pytest.mark.slow
def test_lint_workflows_session_fails_when_zizmor_cannot_run(tmp_path: Path) -> None:
    ws = copy_repo(tmp_path / "repo")
    ci = ws / wf.WORKFLOWS_DIR / CI
    release = ws / wf.WORKFLOWS_DIR / RELEASE
    # Neither file is a valid workflow: zizmor audits nothing and exits with an error,
    # which must not pass as "0 findings".
    ci.write_text(ci.read_text().replace("    runs-on: ubuntu-24.04\n", "", 1))
    release.write_text(release.read_text().replace("    runs-on: windows-2022\n", "", 1))
    out = assert_clean_failure(run_nox(ws, "-s", "lint-workflows"), "zizmor failed (exit")
    assert "0 findings" not in out


def test_prebuilt_tarpaulin_is_the_configured_version(workflows: dict[str, Any]) -> None:
    """The coverage session insists on its configured cargo-tarpaulin; CI
    installs exactly that one prebuilt (else the session compiles it)."""
    wanted = getattr(load_config(REPO).coverage, "tarpaulin_version", None)
    steps = [s for j in workflows[CI]["jobs"].values() for s in j.get("steps", [])
             if wf.action_name(s.get("uses", "")) == "taiki-e/install-action"]
    assert steps
    tools = dict((t.split("@") + [""])[:2] for t in steps[0]["with"]["tool"].split(","))
    assert "cargo-nextest" in tools
    if wanted is not None:
        assert tools["cargo-tarpaulin"] == wanted
