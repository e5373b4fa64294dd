"""The logic behind the Nox sessions of this repository.

Each session in ``noxfile.py`` is a few lines that build a
:class:`ci.context.Context` and call one function of one module here:

=====================  ==========================
session                module
=====================  ==========================
rust-tests             :mod:`ci.cargo`
python-tests           :mod:`ci.pytests`
sdist                  :mod:`ci.sdist`
=====================  ==========================

Shared pieces: :mod:`ci.config` (the ``[tool.maturin-suite]`` table),
:mod:`ci.toolchain` (finding cargo, native libraries and Pythons),
:mod:`ci.console` (running commands, log groups, summaries),
:mod:`ci.maturin` (building wheels), :mod:`ci.artifacts` (atomic writes into
``dist/``), :mod:`ci.venvs` (the per-interpreter test venvs).
"""
