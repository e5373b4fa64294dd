"""Errors the suite reports as one clear message and a non-zero exit."""

from __future__ import annotations


class SuiteError(Exception):
    """A failure to report to the user without a traceback.

    ``hint`` says what to do about it (install a package, fix a key).
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(SuiteError):
    """The ``[tool.maturin-suite]`` table (or a file it names) is wrong."""


class ToolMissing(SuiteError):
    """A program or native library the session needs is not installed."""


class StepFailed(SuiteError):
    """A command run by the session exited non-zero."""

    def __init__(self, message: str, returncode: int, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.returncode = returncode


class CheckFailed(SuiteError):
    """An artifact failed a named rule (see ci.sessions.publish_check)."""
