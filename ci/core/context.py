"""What every session function receives."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ci.core.config import SuiteConfig
from ci.core.console import Console
from ci.core.errors import ToolMissing
from ci.core.project import Project, load_project


@dataclass(frozen=True)
class Context:
    """A session's inputs: config, console, extra arguments and tool venv.

    ``tool_bin`` is the ``bin``/``Scripts`` folder of the session's own venv
    (maturin, twine, ... come from there); ``None`` for sessions that run
    without a venv.
    """

    config: SuiteConfig
    console: Console
    posargs: tuple[str, ...] = ()
    tool_bin: Path | None = None
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    model: Project | None = None

    @property
    def project(self) -> Project:
        """The project model (built once per process when not handed in)."""
        return self.model or load_project(self.config.root, self.base_env)

    @property
    def root(self) -> Path:
        return self.config.root

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(self.base_env)
        if self.tool_bin is not None:
            env["PATH"] = os.pathsep.join([str(self.tool_bin), env.get("PATH", "")])
        env.update(extra)
        return env

    def tool(self, name: str, hint: str | None = None) -> str:
        """Absolute path of a program: the session venv first, then PATH."""
        if self.tool_bin is not None:
            found = shutil.which(name, path=str(self.tool_bin))
            if found:
                return found
        found = shutil.which(name, path=self.base_env.get("PATH"))
        if found:
            return found
        raise ToolMissing(f"{name} not found on PATH", hint=hint)
