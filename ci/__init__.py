"""The logic behind the Nox sessions of this repository.

Each session in ``noxfile.py`` is a few lines that build a
:class:`ci.context.Context` and call one function of one module here:

=====================  =============================================
session                module
=====================  =============================================
rust-tests             :mod:`ci.cargo`
python-tests           :mod:`ci.pytests`
sdist                  :mod:`ci.sdist`
linux-wheel            :mod:`ci.linux_wheel`
windows-gnu-wheel      :mod:`ci.windows` (PE closure: :mod:`ci.dll`)
publish-check          :mod:`ci.publish_check` (ELF/wheel reading: :mod:`ci.wheelcheck`)
coverage               :mod:`ci.coverage`
lint-workflows         :mod:`ci.workflows`
publish-rehearsal      :mod:`ci.rehearsal`
=====================  =============================================

Shared pieces: :mod:`ci.config` (the ``[tool.maturin-suite]`` table),
:mod:`ci.toolchain` (finding cargo, native libraries and Pythons),
:mod:`ci.console` (running commands, log groups, summaries),
:mod:`ci.maturin` (building wheels), :mod:`ci.artifacts` (atomic writes into
``dist/``), :mod:`ci.venvs` (the per-interpreter test venvs),
:mod:`ci.checks` (the rows of publish-check's table), :mod:`ci.noxsupport`
(the only module that knows nox).
"""
