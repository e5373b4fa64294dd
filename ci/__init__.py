"""The logic behind the Nox sessions of this repository.

Each session in ``noxfile.py`` is a few lines that build a
:class:`ci.core.context.Context` and call one function of one module here:

=====================  =============================================
session                module
=====================  =============================================
rust-tests             :mod:`ci.blocks.cargo`
python-tests           :mod:`ci.sessions.python_tests`
sdist                  :mod:`ci.blocks.sdists`
linux-wheel            :mod:`ci.sessions.linux_wheel`
windows-gnu-wheel      :mod:`ci.blocks.mingw` (PE closure: :mod:`ci.blocks.pe`)
publish-check          :mod:`ci.sessions.publish_check` (ELF/wheel reading: :mod:`ci.blocks.wheels`)
coverage               :mod:`ci.sessions.coverage`
lint-workflows         :mod:`ci.blocks.workflows`
publish-rehearsal      :mod:`ci.sessions.publish_rehearsal`
=====================  =============================================

Shared pieces: :mod:`ci.core.config` (the ``[tool.maturin-suite]`` table),
:mod:`ci.blocks.toolchain` (finding cargo, native libraries and Pythons),
:mod:`ci.core.console` (running commands, log groups, summaries),
:mod:`ci.blocks.maturin` (building wheels), :mod:`ci.core.artifacts` (atomic writes into
``dist/``), :mod:`ci.blocks.venvs` (the per-interpreter test venvs),
:mod:`ci.core.findings` (the rows of publish-check's table), :mod:`ci.core.noxsupport`
(the only module that knows nox).
"""
