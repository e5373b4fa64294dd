"""The GitHub workflows run exactly the noxfile's sessions (parity), provide
what ``ci/requirements.toml`` says those sessions need (provisions), are
hardened, and ``nox -s lint-workflows`` enforces all of it.

Every check runs on the real workflow files and the real ``nox -l --json``;
the negative tests mutate a copy of a real workflow and expect the named
rule to fire. The tests named ``test_issue11_*`` each fail on the workflows
of bbec604 (issue 11, defects 1-10).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, assert_clean_failure, assert_ok, copy_repo, run_nox

from ci.blocks import gh_expressions, needs, provisions
from ci.blocks import workflows as wf
from ci.core.config import load_config

CI = "ci.yml"
RELEASE = "release.yml"
SETUP = provisions.SETUP


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


def mutated(
    tmp_path: Path, loader: Callable[[Path], Any], name: str, old: str, new: str, count: int = 1
) -> tuple[dict[str, dict[str, Any]], str]:
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


@pytest.fixture(scope="session")
def requirements() -> needs.Requirements:
    return needs.load(REPO / needs.REQUIREMENTS_FILE, load_config(REPO).python_versions)


def provision_problems(
    workflows: dict[str, Any], lister: wf.SessionLister, requirements: needs.Requirements
) -> list[str]:
    parity = wf.check_parity(workflows, lister)
    found = provisions.check_provisions(workflows, parity, lister, requirements, load_config(REPO).linux_wheel.mode)
    return [str(p) for p in found.problems]


# ---------------------------------------------------------------- parity


def test_parity_holds_for_the_real_workflows(workflows: dict[str, Any], lister: wf.SessionLister) -> None:
    parity = wf.check_parity(workflows, lister)
    assert parity.problems == []
    # Both directions, against nox's own listing (the set-up entry is tagged
    # ci-setup and release-setup: both workflows run it, no plan lists it).
    assert parity.sessions_run_by(CI) == names(lister, "-t", "ci", "ci-gate", "ci-setup")
    assert parity.sessions_run_by(RELEASE) == names(lister, "-t", "release", "release-setup")
    assert names(lister, "-t", "ci")  # the plan is not vacuous
    assert SETUP not in names(lister, "-t", "ci", "ci-gate", "release")


def test_ci_sessions_come_from_the_noxfile_not_a_list(workflows: dict[str, Any], lister: wf.SessionLister) -> None:
    parity = wf.check_parity(workflows, lister)
    ci_runs = [r for r in parity.runs if r.workflow == CI and r.sessions != (SETUP,)]
    assert ci_runs and all(r.plan is not None for r in ci_runs)
    assert {r.plan for r in ci_runs} == {("-t", "ci"), ("-t", "ci-gate"), ("-s", "wheel-tests")}
    # No session name is written anywhere in ci.yml's scripts (the set-up
    # entry names its session through the matrix too: "$NAME").
    scripts = " ".join(str(s.get("run", "")) for j in workflows[CI]["jobs"].values() for s in j.get("steps", []))
    for session in names(lister, *wf.ALL_SESSIONS) - {SETUP}:
        assert re.search(rf"nox -s {re.escape(session)}\b", scripts) is None
        assert re.search(rf"nox -s {SETUP} -- .*\b{re.escape(session)}\b", scripts) is None
    setups = {r.posargs for r in parity.runs if r.workflow == CI and r.sessions == (SETUP,)}
    assert setups == {("$NAME",)}


def test_release_runs_publish_check_with_release_flag(workflows: dict[str, Any], lister: wf.SessionLister) -> None:
    runs = {r.job: r for r in wf.check_parity(workflows, lister).runs if r.workflow == RELEASE}
    assert runs["publish-check"].sessions == ("publish-check",)
    assert runs["publish-check"].posargs == ("--release",)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # A job that does the work itself instead of through nox.
        (
            'run: nox -s "$SESSION"',
            "run: pip install x && pytest",
            ["`pip install x`", "`pytest`", "is tagged ci/ci-gate"],
        ),
        # A session the noxfile does not have.
        ('run: nox -s "$SESSION"', "run: nox -s no-such-session", ["'no-such-session'", "does not list"]),
        # A hand-kept matrix instead of the plan.
        (
            "nox: ${{ fromJSON(needs.plan.outputs.sessions) }}",
            "nox: [{session: rust-tests}]",
            ["hand-kept list", "is tagged ci/ci-gate"],
        ),
        # The plan asks for the wrong tag: CI sessions are run by no job.
        (
            'sessions="$(nox -l --json -t ci)"',
            'sessions="$(nox -l --json -t test)"',
            ["'sdist' is tagged ci/ci-gate", "'lint-workflows' is tagged ci/ci-gate"],
        ),
        # A third-party action could run anything.
        (
            "uses: taiki-e/install-action@542cebaaed782771e619bd5609d97659d109c492 # v2.66.7",
            "uses: some/build-action@542cebaaed782771e619bd5609d97659d109c492 # v2.66.7",
            ["uses some/build-action"],
        ),
        # A python script step.
        (
            "      - name: Set up the machine (ci/requirements.toml)\n        run:",
            "      - name: Set up the machine (ci/requirements.toml)\n        shell: python\n        run:",
            ["'python' script"],
        ),
    ],
)
def test_parity_rejects_mutated_ci(
    tmp_path: Path, loader: Callable[[Path], Any], lister: wf.SessionLister, old: str, new: str, expected: list[str]
) -> None:
    workflows, _ = mutated(tmp_path, loader, CI, old, new)
    problems = "\n".join(str(p) for p in wf.check_parity(workflows, lister).problems)
    for needle in expected:
        assert needle in problems, problems


def test_parity_rejects_untagged_session_in_release(
    tmp_path: Path, loader: Callable[[Path], Any], lister: wf.SessionLister
) -> None:
    workflows, _ = mutated(tmp_path, loader, RELEASE, "run: nox -s sdist", "run: nox -s coverage")
    problems = [str(p) for p in wf.check_parity(workflows, lister).problems]
    assert any("'coverage', which is not tagged release" in p for p in problems), problems
    assert any("'sdist' is tagged release" in p and "no job runs it" in p for p in problems), problems


# Another project's names for the same two workflows (issue 12: lint-workflows
# assumed ci.yml and release.yml).
RENAMED = {CI: "build.yml", RELEASE: "publish.yaml"}


def renamed(tmp_path: Path, loader: Callable[[Path], Any], old: str = "", new: str = "") -> dict[str, Any]:
    folder = tmp_path / wf.WORKFLOWS_DIR
    folder.mkdir(parents=True)
    for name, text in texts().items():
        (folder / RENAMED[name]).write_text(text.replace(old, new) if old else text, encoding="utf-8")
    return wf.load_workflows(tmp_path, loader)


def test_workflow_tags_are_discovered_from_the_file_names(workflows: dict[str, Any], lister: wf.SessionLister) -> None:
    found = wf.discover_workflow_tags(workflows, lister)
    assert {"ci", "ci-gate"} <= set(found[CI]) and "release" in found[RELEASE]
    assert all(t == "ci" or t.startswith("ci-") for t in found[CI])
    assert all(t == "release" or t.startswith("release-") for t in found[RELEASE])
    assert not {"test", "package", "lint"} & {t for tags in found.values() for t in tags}


def as_original(problems: list[wf.Problem]) -> list[str]:
    back = {v: k for k, v in RENAMED.items()}
    return [str(p).replace(p.workflow, back.get(p.workflow, p.workflow), 1) for p in problems]


def test_renamed_workflows_take_their_tags_from_config(
    tmp_path: Path, loader: Callable[[Path], Any], workflows: dict[str, Any], lister: wf.SessionLister
) -> None:
    moved = renamed(tmp_path, loader)
    assert set(moved) == {"build.yml", "publish.yaml"}  # *.yaml is found too
    # By name they own no tag: their steps are checked, not which sessions they run.
    assert wf.discover_workflow_tags(moved, lister) == {}
    assert not any("tagged" in str(p) for p in wf.check_parity(moved, lister).problems)
    # Configured, they are held to exactly what the original names are held to.
    owned = wf.discover_workflow_tags(workflows, lister)
    tags = {RENAMED[name]: owned[name] for name in (CI, RELEASE)}
    parity = wf.check_parity(moved, lister, tags)
    assert as_original(parity.problems) == [str(p) for p in wf.check_parity(workflows, lister).problems]
    assert parity.sessions_run_by("publish.yaml") >= names(lister, "-t", "release")
    # The configured ownership is enforced: swapped, each runs the other's sessions.
    swapped = [
        str(p)
        for p in wf.check_parity(moved, lister, {"build.yml": owned[RELEASE], "publish.yaml": owned[CI]}).problems
    ]
    assert any(p.startswith("build.yml: runs session 'coverage', which is not tagged release") for p in swapped)
    assert any(
        p.startswith("publish.yaml: session 'coverage' is tagged ci/") and p.endswith("no job runs it") for p in swapped
    ), swapped
    # A configured workflow that is not there is named.
    missing = [str(p) for p in wf.check_parity(moved, lister, {CI: ("ci", "ci-gate")}).problems]
    assert f"{CI}: workflow file is missing" in missing


def test_publish_environment_comes_from_config(tmp_path: Path, loader: Callable[[Path], Any]) -> None:
    workflows = renamed(tmp_path, loader, "      name: pypi\n", "      name: release\n")
    text = (tmp_path / wf.WORKFLOWS_DIR / "publish.yaml").read_text(encoding="utf-8")
    problems = [str(p) for p in wf.check_hardening("publish.yaml", workflows["publish.yaml"], text)]
    assert problems == [
        "publish.yaml, job publish: id-token: write outside the PyPI publish job "
        "(environment pypi + pypa/gh-action-pypi-publish)"
    ]
    assert wf.check_hardening("publish.yaml", workflows["publish.yaml"], text, publish_environment="release") == []


# ---------------------------------------------------------------- hardening


def test_real_workflows_are_hardened(workflows: dict[str, Any]) -> None:
    for name, text in texts().items():
        assert wf.check_hardening(name, workflows[name], text) == []
    assert "zizmor: ignore" not in "".join(texts().values())


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        (
            CI,
            "actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2",
            "actions/checkout@v6",
            "not a full commit SHA",
        ),
        (
            CI,
            "actions/setup-python@e797f83bcb11b83ae66e0230d6156d7c80228e7c # v6.0.0",
            "actions/setup-python@e797f83bcb11b83ae66e0230d6156d7c80228e7c",
            "no version comment",
        ),
        (CI, "          persist-credentials: false\n", "", "persist-credentials: false"),
        (CI, "    timeout-minutes: 10\n", "", "no timeout-minutes"),
        (CI, "permissions: {}\n\nconcurrency", "permissions: write-all\n\nconcurrency", "permissions: write-all"),
        (
            CI,
            "      contents: read  # to check out the noxfile",
            "      contents: read  # to check out the noxfile\n      id-token: write",
            "id-token: write outside",
        ),
        (CI, "      contents: read  # to check out the noxfile", "      contents: write", "contents: write"),
        (CI, "          save-if: ${{ github.ref == 'refs/heads/main' }}\n", "", "save-if"),
        (CI, 'run: nox -s "$SESSION"', "run: nox -s ${{ matrix.nox.session }}", "inside its script"),
        (CI, "  pull_request:\n", "  pull_request_target:\n", "pull_request_target"),
        (RELEASE, "          cache: false\n", "", "cache: false"),
        (
            RELEASE,
            "        run: nox -s setup -- linux-wheel\n",
            "        run: nox -s setup -- linux-wheel\n"
            "      - uses: Swatinem/rust-cache@6323deb102c322ba6fcbdcafc7e3dddab59af2b6 # v2.9.2\n"
            "        with:\n          save-if: ${{ github.ref == 'refs/heads/main' }}\n",
            "no caches in a release workflow",
        ),
    ],
)
def test_hardening_rejects(
    tmp_path: Path, loader: Callable[[Path], Any], name: str, old: str, new: str, expected: str
) -> None:
    workflows, text = mutated(tmp_path, loader, name, old, new)
    problems = "\n".join(str(p) for p in wf.check_hardening(name, workflows[name], text))
    assert expected in problems, problems


# ---------------------------------------------------------------- structure


def test_release_publishes_only_after_the_gates(workflows: dict[str, Any]) -> None:
    jobs = workflows[RELEASE]["jobs"]
    assert wf.triggers(workflows[RELEASE])["push"] == {"tags": ["v*"]}
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


def test_windows_wheel_builds_on_windows_with_msys2(
    workflows: dict[str, Any], requirements: needs.Requirements
) -> None:
    job = workflows[RELEASE]["jobs"]["windows-gnu-wheel"]
    assert job["runs-on"].startswith("windows")
    assert job["defaults"]["run"]["shell"] == "msys2 {0}"
    msys2 = [s for s in job["steps"] if wf.action_name(s.get("uses", "")) == "msys2/setup-msys2"]
    assert msys2 and msys2[0]["with"]["msystem"] == "MINGW64"
    # The MSYS2 packages come from the set-up entry (pacman), per the table.
    runner = requirements.runner_for(job["runs-on"])
    assert runner is not None
    provided = provisions.provisions_before(job["steps"], runner, requirements, {})
    assert "mingw-w64-x86_64-gmp" in provided.msys2
    native = load_config(REPO).native
    assert all(lib.msys2 in provided.msys2 for lib in native if lib.msys2)


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


def test_wheels_are_built_once_and_tested_everywhere(
    workflows: dict[str, Any], lister: wf.SessionLister, requirements: needs.Requirements
) -> None:
    """The Linux and Windows wheels the session jobs build are tested as
    downloaded, on ubuntu-24.04 (the gate) and windows-2022, with every
    CPython, by wheel-tests: a session that needs no Rust, so builds nothing."""
    jobs = workflows[CI]["jobs"]
    parity = wf.check_parity(workflows, lister)
    wheel_tests = names(lister, "-s", "wheel-tests")
    assert {f"wheel-tests-{v}" for v in load_config(REPO).python_versions} == wheel_tests
    uploads = [
        s
        for s in jobs["session"]["steps"]
        if wf.action_name(s.get("uses", "")) == "actions/upload-artifact" and s["with"]["path"] == "dist/"
    ]
    assert [s["with"]["name"] for s in uploads] == ["dist-${{ matrix.nox.session }}"]
    assert {"linux-wheel", "windows-gnu-wheel"} <= names(lister, "-t", "ci")
    # Linux: the gate job, on every dist/ file of the session jobs.
    assert wheel_tests <= names(lister, "-t", "ci-gate") and jobs["gate"]["runs-on"] == "ubuntu-24.04"
    # Windows: the windows-gnu-wheel job's artifact, on windows-2022.
    win = jobs["wheel-tests-windows"]
    assert win["runs-on"] == "windows-2022" and "session" in win["needs"]
    (download,) = [s for s in win["steps"] if wf.action_name(s.get("uses", "")) == "actions/download-artifact"]
    assert download["with"] == {"name": "dist-windows-gnu-wheel", "path": "dist/"}
    runs = [r for r in parity.runs if (r.workflow, r.job) == (CI, "wheel-tests-windows") and r.sessions != (SETUP,)]
    assert [set(r.sessions) for r in runs] == [wheel_tests]
    for platform in ("linux", "windows"):
        n = requirements.needs("wheel-tests", platform)
        assert n is not None and not (n.rust_host or n.apt or n.msys2 or n.cargo_tools), platform


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
    ci.write_text(
        ci.read_text().replace(
            "Swatinem/rust-cache@6323deb102c322ba6fcbdcafc7e3dddab59af2b6 # v2.9.2", "Swatinem/rust-cache@v2", 1
        )
    )
    # Schema: a job without runs-on (zizmor skips a file it cannot parse).
    release = ws / wf.WORKFLOWS_DIR / RELEASE
    release.write_text(release.read_text().replace("    runs-on: windows-2022\n", "", 1))
    out = assert_clean_failure(
        run_nox(ws, "-s", "lint-workflows"), "zizmor reported", "does not match the GitHub workflow schema"
    )
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


# ---------------------------------------------------------------- provisions


def test_real_workflows_provide_every_need(
    workflows: dict[str, Any], lister: wf.SessionLister, requirements: needs.Requirements
) -> None:
    parity = wf.check_parity(workflows, lister)
    found = provisions.check_provisions(workflows, parity, lister, requirements, load_config(REPO).linux_wheel.mode)
    assert [str(p) for p in found.problems] == []
    checked = {(w, j, s, p) for w, j, s, p in found.checked}
    # Every session every job runs was checked, on its runner's platform
    # (the set-up entry's own run is a provision of the step after it).
    for run in parity.runs:
        for session in set(run.sessions) - {SETUP}:
            assert any((run.workflow, run.job, session) == c[:3] for c in checked), (run, session)
    assert (RELEASE, "windows-gnu-wheel", "windows-gnu-wheel", "windows") in checked
    assert (CI, "session", "windows-gnu-wheel", "linux") in checked
    assert (CI, "wheel-tests-windows", "wheel-tests-3.9", "windows") in checked
    assert (CI, "gate", "wheel-tests-3.13", "linux") in checked
    assert (CI, "plan", "(nox only)", "linux") in checked
    # Every job that runs a session sets up its machine with the set-up entry.
    for name, w in workflows.items():
        for job_id, job in w["jobs"].items():
            scripts = [str(s.get("run", "")) for s in job.get("steps", [])]
            if any(provisions.runs_nox(s) for s in job.get("steps", [])) and job_id != "plan":
                assert any(f"nox -s {SETUP} -- " in s for s in scripts), (name, job_id)


SETUP_STEP = "      - name: Set up the machine (ci/requirements.toml)\n        run: nox -s setup -- "
CI_SETUP = SETUP_STEP + '"$NAME"\n'  # the first is the session job's
GATE_SETUP = CI_SETUP + "      - name: Download the dist/ files of the session jobs"
INSTALL_NOX = (
    "      - name: Install nox (from the lock, hashes required)\n"
    "        run: python -m pip install --require-hashes -r ci/requirements-nox.txt\n"
)

# (workflow, old, new, job, what must be named) — one provision dropped each.
DROPPED = [
    # The set-up step dropped: every need it provided is named, per kind:
    # rust toolchain host (issue 11 defect 1), msys2 package (defect 2),
    # rustup component (defect 3), cargo tool with its version (defect 5),
    # rustup target, apt package.
    (
        RELEASE,
        SETUP_STEP + "windows-gnu-wheel\n",
        "",
        "windows-gnu-wheel",
        "rust toolchain with host x86_64-pc-windows-gnu",
    ),
    (RELEASE, SETUP_STEP + "windows-gnu-wheel\n", "", "windows-gnu-wheel", "msys2 package mingw-w64-x86_64-pkgconf"),
    (CI, CI_SETUP, "", "session", "session 'coverage' on linux needs rustup component llvm-tools"),
    (CI, CI_SETUP, "", "session", "session 'coverage' on linux needs cargo tool cargo-tarpaulin 0.37.5"),
    (CI, CI_SETUP, "", "session", "session 'lint' on linux needs rustup component clippy"),
    (CI, CI_SETUP, "", "session", "session 'windows-gnu-wheel' on linux needs rustup target x86_64-pc-windows-gnu"),
    (CI, CI_SETUP, "", "session", "session 'rust-tests' on linux needs apt package libgmp-dev"),
    (
        CI,
        CI_SETUP,
        "",
        "session",
        "session 'python-tests-3.9' on linux needs rust toolchain with host x86_64-unknown-linux-gnu",
    ),
    (
        CI,
        GATE_SETUP,
        "      - name: Download the dist/ files of the session jobs",
        "gate",
        "session 'publish-check' on linux needs apt package git",
    ),
    (RELEASE, SETUP_STEP + "linux-wheel\n", "", "linux-wheel", "session 'linux-wheel' on linux needs apt package gcc"),
    # The set-up entry for another session, a dry run, a session name that
    # does not reach it, a condition that does not hold for the session.
    (
        RELEASE,
        "nox -s setup -- windows-gnu-wheel",
        "nox -s setup -- sdist",
        "windows-gnu-wheel",
        "rust toolchain with host x86_64-pc-windows-gnu",
    ),
    (
        RELEASE,
        "nox -s setup -- linux-wheel",
        "nox -s setup -- --dry-run linux-wheel",
        "linux-wheel",
        "apt package libgmp-dev",
    ),
    (
        CI,
        "      NAME: ${{ matrix.nox.name }}\n",
        "",
        "session",
        "session 'sdist' on linux needs apt package libgmp-dev",
    ),
    (
        CI,
        CI_SETUP,
        CI_SETUP.replace("        run:", "        if: ${{ matrix.nox.name == 'lint' }}\n        run:"),
        "session",
        "session 'coverage' on linux needs rustup component llvm-tools",
    ),
    # python versions (setup-python provides them; the set-up entry only checks)
    (RELEASE, "            3.9\n", "", "publish-check", "session 'publish-check' on linux needs python 3.9"),
    (RELEASE, 'python-version: "3.13"', 'python-version: "3.12"', "linux-wheel", "needs python 3.13"),
    # nox from the lock, not a bare group (defect 10)
    (
        RELEASE,
        "run: python -m pip install --require-hashes -r ci/requirements-nox.txt",
        "run: python -m pip install --group nox",
        "linux-wheel",
        "bare dependency group nox",
    ),
    (
        CI,
        "run: python -m pip install --require-hashes -r ci/requirements-nox.txt",
        "run: python -m pip install -r ci/requirements-nox.txt",
        "plan",
        "without --require-hashes",
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "job", "expected"), DROPPED, ids=[f"{d[0]}-{d[3]}-{i}" for i, d in enumerate(DROPPED)]
)
def test_provisions_reject_a_dropped_provision(
    tmp_path: Path,
    loader: Callable[[Path], Any],
    lister: wf.SessionLister,
    requirements: needs.Requirements,
    name: str,
    old: str,
    new: str,
    job: str,
    expected: str,
) -> None:
    workflows, _ = mutated(tmp_path, loader, name, old, new)
    problems = provision_problems(workflows, lister, requirements)
    assert any(p.startswith(f"{name}, job {job}: ") and expected in p for p in problems), problems


def test_provisions_name_the_interpreters_of_the_windows_wheel_tests(
    tmp_path: Path, loader: Callable[[Path], Any], lister: wf.SessionLister, requirements: needs.Requirements
) -> None:
    # Drop 3.9 from every setup-python of ci.yml (session, gate, wheel-tests-windows).
    workflows, _ = mutated(tmp_path, loader, CI, "            3.9\n", "", count=3)
    problems = provision_problems(workflows, lister, requirements)
    assert any(
        p.startswith(f"{CI}, job wheel-tests-windows: session 'wheel-tests-3.9' on windows needs python 3.9")
        for p in problems
    ), problems


def test_provisions_do_not_count_a_step_they_cannot_evaluate(
    tmp_path: Path, loader: Callable[[Path], Any], lister: wf.SessionLister, requirements: needs.Requirements
) -> None:
    workflows, _ = mutated(
        tmp_path,
        loader,
        CI,
        CI_SETUP,
        CI_SETUP.replace("        run:", "        if: ${{ github.event_name == 'push' }}\n        run:"),
    )
    problems = provision_problems(workflows, lister, requirements)
    assert any("rustup component llvm-tools" in p and "cannot be evaluated here" in p for p in problems), problems


def test_provisions_only_count_steps_before_the_nox_step(
    tmp_path: Path, loader: Callable[[Path], Any], lister: wf.SessionLister, requirements: needs.Requirements
) -> None:
    setup = SETUP_STEP + "sdist\n"
    run = "      - name: nox -s sdist\n        run: nox -s sdist\n"
    workflows, _ = mutated(tmp_path, loader, RELEASE, setup + run, run + setup)
    problems = provision_problems(workflows, lister, requirements)
    assert any(p.startswith(f"{RELEASE}, job sdist: ") and "apt package libgmp-dev" in p for p in problems), problems


def test_the_setup_entry_counts_only_after_nox_is_installed(
    tmp_path: Path, loader: Callable[[Path], Any], lister: wf.SessionLister, requirements: needs.Requirements
) -> None:
    setup = SETUP_STEP + "sdist\n"
    workflows, _ = mutated(tmp_path, loader, RELEASE, INSTALL_NOX + setup, setup + INSTALL_NOX)
    problems = [p for p in provision_problems(workflows, lister, requirements) if p.startswith(f"{RELEASE}, job sdist")]
    assert any("nox from the lock" in p for p in problems), problems
    assert any("apt package libgmp-dev" in p for p in problems), problems


def test_hand_written_provisions_still_count(requirements: needs.Requirements) -> None:
    """The steps the set-up entry replaced are still understood (a job may
    provide a need by hand)."""
    runner = requirements.runner_for("ubuntu-24.04")
    assert runner is not None
    script = "\n".join(
        [
            "rustup toolchain install stable --profile minimal -c llvm-tools",
            "rustup default stable",
            "rustup target add x86_64-pc-windows-gnu",
            "sudo apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates libgmp-dev",
            "cargo install --locked cargo-tarpaulin@0.37.5 --no-default-features",
        ]
    )
    provided = provisions.provisions_before([{"run": script}], runner, requirements, {})
    assert provided.rust_host == "x86_64-unknown-linux-gnu"
    assert provided.components == {"llvm-tools"} and provided.targets == {"x86_64-pc-windows-gnu"}
    assert {"libgmp-dev", "gcc"} <= provided.apt and provided.tools == {"cargo-tarpaulin": {"0.37.5"}}
    coverage = requirements.needs("coverage", "linux")
    gaps = needs.missing(coverage, requirements.nox, provided, runner_host=runner.rust_host, distro=runner.distro)
    assert [g.kind for g in gaps] == ["nox", "python"]  # what setup-python and the lock provide


def test_provisions_need_a_declared_platform(
    workflows: dict[str, Any], lister: wf.SessionLister, requirements: needs.Requirements
) -> None:
    sessions = {k: v for k, v in requirements.sessions.items() if k != "windows-gnu-wheel"}
    sessions["windows-gnu-wheel"] = {"linux": requirements.sessions["windows-gnu-wheel"]["linux"]}
    partial = needs.Requirements(requirements.nox, requirements.runners, sessions, requirements.install_action)
    problems = provision_problems(workflows, lister, partial)
    assert any(
        "job windows-gnu-wheel" in p and "declares no [sessions.windows-gnu-wheel.windows]" in p for p in problems
    ), problems


# ---------------------------------------------------------------- issue 11, defect by defect


def release_job(workflows: dict[str, Any], job: str) -> dict[str, Any]:
    return dict(workflows[RELEASE]["jobs"][job])


def test_issue11_1_windows_job_selects_the_gnu_host(
    workflows: dict[str, Any], requirements: needs.Requirements
) -> None:
    runner = requirements.runner_for("windows-2022")
    assert runner is not None
    provided = provisions.provisions_before(
        release_job(workflows, "windows-gnu-wheel")["steps"], runner, requirements, {}
    )
    wanted = requirements.needs("windows-gnu-wheel", "windows")
    assert wanted is not None and provided.rust_host == "x86_64-pc-windows-gnu" == wanted.rust_host


def test_issue11_2_msys2_installs_pkgconf(workflows: dict[str, Any], requirements: needs.Requirements) -> None:
    runner = requirements.runner_for("windows-2022")
    assert runner is not None
    provided = provisions.provisions_before(
        release_job(workflows, "windows-gnu-wheel")["steps"], runner, requirements, {}
    )
    assert "mingw-w64-x86_64-pkgconf" in provided.msys2


def _session_job_provides(
    workflows: dict[str, Any], requirements: needs.Requirements, name: str, lister: wf.SessionLister
) -> needs.Provided:
    entry = next(e for e in lister(("-t", "ci")) if e["name"] == name)
    runner = requirements.runner_for("ubuntu-24.04")
    assert runner is not None
    job = workflows[CI]["jobs"]["session"]
    return provisions.provisions_before(
        job["steps"],
        runner,
        requirements,
        {"matrix.nox": entry},
        {**workflows[CI].get("env", {}), **job.get("env", {})},
    )


def test_issue11_3_coverage_gets_llvm_tools(
    workflows: dict[str, Any], requirements: needs.Requirements, lister: wf.SessionLister
) -> None:
    assert "llvm-tools" in _session_job_provides(workflows, requirements, "coverage", lister).components
    assert "llvm-tools" not in _session_job_provides(workflows, requirements, "sdist", lister).components


def test_linux_wheel_route_follows_the_mode_not_the_runner(requirements: needs.Requirements) -> None:
    linux, windows = requirements.runner_for("ubuntu-24.04"), requirements.runner_for("windows-2022")
    assert linux is not None and windows is not None
    assert linux.container_engine  # Docker answers on ubuntu-24.04 ...
    assert needs.linux_wheel_route("auto", linux) == "zig"  # ... and auto still takes zig there
    assert needs.linux_wheel_route("auto", windows) == "zig"
    assert needs.linux_wheel_route("container", linux) == "container"


def test_issue11_4_linux_wheel_takes_the_zig_route_on_github(
    workflows: dict[str, Any], lister: wf.SessionLister, requirements: needs.Requirements
) -> None:
    parity = wf.check_parity(workflows, lister)
    found = provisions.check_provisions(workflows, parity, lister, requirements, load_config(REPO).linux_wheel.mode)
    assert found.notes == []


def test_issue11_5_tarpaulin_is_the_configured_version_not_the_manifest(
    workflows: dict[str, Any], requirements: needs.Requirements, lister: wf.SessionLister
) -> None:
    pin = load_config(REPO).coverage.tarpaulin_version
    coverage = requirements.needs("coverage", "linux")
    assert coverage is not None and dict(coverage.cargo_tools)["cargo-tarpaulin"] == pin
    assert _session_job_provides(workflows, requirements, "coverage", lister).tools["cargo-tarpaulin"] == {pin}
    # The pinned install-action's manifest does not reach it, so asking it would not count.
    old = "tool: cargo-nextest,cargo-tarpaulin@" + pin
    runner = requirements.runner_for("ubuntu-24.04")
    assert runner is not None
    step = {"uses": "taiki-e/install-action@542cebaaed782771e619bd5609d97659d109c492", "with": {"tool": old[6:]}}
    provided = provisions.provisions_before([step], runner, requirements, {})
    assert "cargo-tarpaulin" not in provided.tools and "0.35.1" in provided.refused["cargo tool cargo-tarpaulin"]


def plan_script(workflows: dict[str, Any]) -> str:
    (step,) = [s for s in workflows[CI]["jobs"]["plan"]["steps"] if s.get("id") == "plan"]
    return str(step["run"])


def run_plan(tmp_path: Path, script: str, nox_body: str) -> tuple[int, str]:
    """The plan step as GitHub runs it (bash -e -o pipefail), with a stand-in nox."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "nox").write_text(f"#!/bin/sh\n{nox_body}\n", encoding="utf-8")
    (bindir / "nox").chmod(0o755)
    out = tmp_path / "github_output"
    out.write_text("", encoding="utf-8")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "GITHUB_OUTPUT": str(out)}
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, out.read_text(encoding="utf-8")


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("bash") is None, reason="needs bash and jq")
def test_issue11_6_plan_step_fails_when_nox_fails(tmp_path: Path, workflows: dict[str, Any]) -> None:
    script = plan_script(workflows)
    assert run_plan(tmp_path, script, 'echo "nox: error" >&2; exit 3')[0] != 0
    assert run_plan(tmp_path, script, "echo '[]'")[0] != 0
    assert run_plan(tmp_path, script, "echo 'not json'")[0] != 0
    rc, output = run_plan(tmp_path, script, """echo '[{"session": "sdist"}]'""")
    assert rc == 0 and 'sessions=[{"session": "sdist"}]' in output
    # The old step: nox fails, the step passes with an empty matrix.
    old = 'echo "sessions=$(nox -l --json -t ci)" >> "$GITHUB_OUTPUT"'
    assert run_plan(tmp_path, old, "exit 3") == (0, "sessions=\n")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('          sessions="$(nox -l --json -t ci)"\n', "", "straight into $GITHUB_OUTPUT"),
        (
            '          jq -e \'type == "array" and length > 0\' <<< "$gates" > /dev/null\n',
            "",
            "writes $gates to $GITHUB_OUTPUT without checking",
        ),
        ("          set -euo pipefail\n", "", "without `set -euo pipefail`"),
    ],
)
def test_issue11_6_parity_rejects_an_unchecked_plan(
    tmp_path: Path, loader: Callable[[Path], Any], lister: wf.SessionLister, old: str, new: str, expected: str
) -> None:
    if "straight" in expected:  # the old form of the sessions line
        old, new = '          echo "sessions=$sessions"', '          echo "sessions=$(nox -l --json -t ci)"'
    workflows, _ = mutated(tmp_path, loader, CI, old, new)
    problems = [str(p) for p in wf.check_parity(workflows, lister).problems]
    assert any(p.startswith(f"{CI}, job plan: plan step") and expected in p for p in problems), problems


def test_issue11_7_release_can_be_dry_run(workflows: dict[str, Any]) -> None:
    dispatch = wf.triggers(workflows[RELEASE])["workflow_dispatch"]
    assert dispatch["inputs"]["dry-run"]["type"] == "boolean"
    assert wf.check_dry_run(RELEASE, workflows[RELEASE]) == []
    publish_if = workflows[RELEASE]["jobs"]["publish"]["if"]
    ok = {"needs": {j: {"result": "success"} for j in workflows[RELEASE]["jobs"]}}
    tag = {**ok, "github.ref": "refs/tags/v1.2.3"}
    assert gh_expressions.evaluate(publish_if, {**tag, "inputs": {"dry-run": True}}) is False
    assert gh_expressions.evaluate(publish_if, {**tag, "inputs": {"dry-run": False}}) is True
    assert gh_expressions.evaluate(publish_if, {**tag, "inputs": {}}) is True  # a tag push has no inputs
    assert (
        gh_expressions.evaluate(publish_if, {**ok, "github.ref": "refs/heads/main", "inputs": {"dry-run": False}})
        is False
    )
    failed = {"needs": {**ok["needs"], "publish-check": {"result": "failure"}}}
    assert gh_expressions.evaluate(publish_if, {**failed, "github.ref": "refs/tags/v1", "inputs": {}}) is False


@pytest.mark.parametrize(
    ("old", "new", "job", "expected"),
    [
        ("  workflow_dispatch:\n", "  workflow_call:\n", "", "cannot be started by hand"),
        ("        type: boolean\n", "        type: string\n", "", "no boolean `dry-run` input"),
        ("${{ !inputs.dry-run && ", "${{ ", "publish", "skipped in a dry run"),
        (
            "${{ !inputs.dry-run && startsWith(github.ref, 'refs/tags/v')\n      && ",
            "${{ ",
            "publish",
            "skipped in a dry run",
        ),
        # A build job skipped in a dry run: the rehearsal would not rehearse it.
        (
            "    needs: [linux-wheel, windows-gnu-wheel, sdist]\n",
            "    needs: [linux-wheel, windows-gnu-wheel, sdist]\n    if: ${{ !inputs.dry-run }}\n",
            "publish-check",
            "must run every job but the upload",
        ),
    ],
)
def test_issue11_7_dry_run_rejects(
    tmp_path: Path, loader: Callable[[Path], Any], old: str, new: str, job: str, expected: str
) -> None:
    workflows, _ = mutated(tmp_path, loader, RELEASE, old, new)
    problems = [str(p) for p in wf.check_dry_run(RELEASE, workflows[RELEASE])]
    where = f"{RELEASE}, job {job}: " if job else f"{RELEASE}: "
    assert any(p.startswith(where) and expected in p for p in problems), problems


def test_issue11_8_windows_gnu_wheel_runs_on_pull_requests(workflows: dict[str, Any], lister: wf.SessionLister) -> None:
    assert "windows-gnu-wheel" in names(lister, "-t", "ci")
    assert wf.triggers(workflows[CI])["pull_request"] is None  # every pull request
    runs = [r for r in wf.check_parity(workflows, lister).runs if "windows-gnu-wheel" in r.sessions]
    assert {(r.workflow, r.job) for r in runs} == {(CI, "session"), (RELEASE, "windows-gnu-wheel")}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "Swatinem/rust-cache@6323deb102c322ba6fcbdcafc7e3dddab59af2b6 # v2.9.2",
            "Swatinem/rust-cache@779680da715d629ac1d338a641029a2f4372abb5 # v2.8.2",
            "Swatinem/rust-cache v2.8.2 runs on Node 20",
        ),
        (
            "actions/upload-artifact@b7c566a772e6b6bfb58ed0dc250532a479d7789f # v6.0.0",
            "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02 # v4.6.2",
            "upload-artifact v4.6.2 runs on Node 20",
        ),
        (
            "actions/download-artifact@37930b1c2abaa49bbe596cd826c3c89aef350131 # v7.0.0",
            "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093 # v4.3.0",
            "download-artifact v4.3.0 runs on Node 20",
        ),
    ],
)
def test_issue11_9_actions_run_on_node24(
    tmp_path: Path, loader: Callable[[Path], Any], old: str, new: str, expected: str
) -> None:
    workflows, text = mutated(tmp_path, loader, CI, old, new)
    problems = "\n".join(str(p) for p in wf.check_hardening(CI, workflows[CI], text))
    assert expected in problems, problems


def test_issue11_10_every_job_installs_nox_from_the_lock(workflows: dict[str, Any]) -> None:
    lock = REPO / "ci" / "requirements-nox.txt"
    assert re.search(r"^delvewheel==", lock.read_text(encoding="utf-8"), re.M)  # what the gate needs
    for name, w in workflows.items():
        for job_id, job in w["jobs"].items():
            scripts = [str(s.get("run", "")) for s in job.get("steps", [])]
            if not any("nox " in s for s in scripts):
                continue
            assert any("pip install --require-hashes -r ci/requirements-nox.txt" in s for s in scripts), (name, job_id)
            assert not any("--group" in s for s in scripts), (name, job_id)


# ---------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("expr", "context", "expected"),
    [
        ("${{ matrix.nox.name == 'lint' }}", {"matrix.nox": {"name": "lint"}}, True),
        ("${{ matrix.nox.name != 'lint' && matrix.nox.name != 'x' }}", {"matrix.nox": {"name": "lint"}}, False),
        ("${{ contains(matrix.nox.tags, 'ci') }}", {"matrix.nox": {"tags": ["ci", "test"]}}, True),
        ("${{ !contains(matrix.nox.tags, 'lint') }}", {"matrix.nox": {"tags": ["ci", "lint"]}}, False),
        ('${{ contains(fromJSON(\'["a", "b"]\'), matrix.nox.name) }}', {"matrix.nox": {"name": "B"}}, True),
        ("${{ !cancelled() }}", {}, True),
        ("${{ github.ref == 'refs/heads/main' }}", {}, None),
        ("${{ github.ref == 'refs/heads/main' || matrix.nox.name == 'lint' }}", {"matrix.nox": {"name": "lint"}}, True),
        ("${{ github.ref == 'refs/heads/main' && matrix.nox.name == 'lint' }}", {"matrix.nox": {"name": "x"}}, False),
        ("${{ startsWith(github.ref, 'refs/tags/v') }}", {"github.ref": "refs/tags/v1"}, True),
        ("${{ (inputs.dry-run) }}", {"inputs": {}}, False),
        ("${{ it's broken", {}, None),
        (None, {}, True),
        (False, {}, False),
    ],
)
def test_evaluate(expr: Any, context: dict[str, Any], expected: bool | None) -> None:
    assert gh_expressions.evaluate(expr, context) is expected
