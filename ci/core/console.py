"""Running commands and reporting what happened.

In GitHub Actions (``GITHUB_ACTIONS=true``) each step is wrapped in
``::group::``/``::endgroup::`` and a failure ends with an ``::error::`` line;
elsewhere the output is plain. Every session ends with :meth:`Console.summary`.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ci.core.errors import StepFailed, ToolMissing

STOP_GRACE = 10.0  # seconds a stopped command gets to end before it is killed


def end_group(proc: subprocess.Popen[str], grace: float = STOP_GRACE) -> None:
    """End ``proc`` and every process it started (its own process group on
    POSIX): SIGTERM, then SIGKILL after ``grace`` seconds."""
    if os.name == "nt":
        proc.kill()
        proc.wait()
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # The leader is gone; make sure nothing of its group lingers.
            os.killpg(proc.pid, signal.SIGKILL)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            continue
        return


def run_group(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None, capture: bool, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` in a process group of its own: when the session is
    stopped (Ctrl-C, SIGTERM, SIGHUP) the whole group is ended, grandchildren
    (rustc under cargo, a server under a wrapper) included."""
    pipe = subprocess.PIPE if capture else None
    with subprocess.Popen(
        args,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        text=True,
        stdout=pipe,
        stderr=pipe,
        start_new_session=os.name != "nt",
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:
            end_group(proc)
            raise
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def in_github_actions(env: Mapping[str, str] | None = None) -> bool:
    return (env if env is not None else os.environ).get("GITHUB_ACTIONS") == "true"


@dataclass
class Console:
    """Where a session's steps and messages go."""

    github: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    steps: list[tuple[str, float, bool]] = field(default_factory=list)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Console:
        return cls(github=in_github_actions(env))

    def say(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        self.say(f"::warning::{message}" if self.github else f"warning: {message}")

    def error(self, message: str) -> None:
        first, _, rest = message.partition("\n")
        if self.github:
            # GitHub annotations are one line; keep the rest as plain output.
            self.say(f"::error::{first}")
            if rest:
                self.say(rest)
        else:
            self.say(f"error: {message}")

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """A named step: a log group on GitHub, a header line elsewhere."""
        start = time.monotonic()
        self.say(f"::group::{title}" if self.github else f"--- {title}")
        ok = False
        try:
            yield
            ok = True
        finally:
            elapsed = time.monotonic() - start
            self.steps.append((title, elapsed, ok))
            if self.github:
                self.say("::endgroup::")
            if not ok:
                self.say(f"--- {title}: failed after {elapsed:.1f}s")

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        title: str | None = None,
        capture: bool = False,
        check: bool = True,
        hint: str | None = None,
        timeout: tuple[float, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one command as a step; raise :class:`StepFailed` when it fails
        or outlives ``timeout`` (seconds, and the config key that set them)."""
        args = [os.fspath(a) for a in argv]
        shown = shlex.join(args)
        with self.step(title or shown):
            if title:
                self.say(f"$ {shown}")
            try:
                proc = run_group(args, cwd=cwd, env=env, capture=capture, timeout=timeout[0] if timeout else None)
            except FileNotFoundError:
                raise ToolMissing(f"{args[0]} not found (needed to run: {shown})") from None
            except subprocess.TimeoutExpired:
                seconds, key = timeout or (0.0, "")
                raise StepFailed(
                    f"timed out after {seconds:.0f}s ({key}), ended: {shown}",
                    124,
                    hint=f"raise {key} if this run is legitimately slow",
                ) from None
            if check and proc.returncode != 0:
                if capture:
                    self.say((proc.stdout or "") + (proc.stderr or ""))
                raise StepFailed(
                    f"command failed with exit code {proc.returncode}: {shown}",
                    proc.returncode,
                    hint=hint,
                )
            return proc

    def summary(self, title: str, rows: Sequence[tuple[str, str]]) -> str:
        """Print and return a short summary table of what the session did."""
        width = max((len(k) for k, _ in rows), default=0)
        lines = [f"== {title} =="]
        lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
        total = sum(t for _, t, _ in self.steps)
        lines.append(f"  {'steps'.ljust(width)}  {len(self.steps)} in {total:.1f}s")
        text = "\n".join(lines)
        self.say(text)
        if self.github and os.environ.get("GITHUB_STEP_SUMMARY"):
            with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:
                f.write(f"### {title}\n\n| | |\n|---|---|\n")
                f.writelines(f"| {k} | {v} |\n" for k, v in rows)
        return text


def probe(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str] | None:
    """Run a short query (a version, a compiler probe) with its output
    captured, after showing it as ``$ argv`` like every other command; None
    when the program cannot be started or does not answer in ``timeout``."""
    args = [os.fspath(a) for a in argv]
    print(f"$ {shlex.join(args)}", file=sys.stderr, flush=True)
    try:
        return subprocess.run(
            args,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
