"""The engine behind the Nox sessions: three floors, each importing only the
floors below it (``tests/test_layout.py`` enforces it).

``ci.sessions``
    One module per nox session, each with ``run(ctx)``; ``noxfile.py`` hands
    the module's name to :func:`ci.core.noxsupport.engine`. No session module
    imports another.
``ci.blocks``
    Building blocks that sessions share: cargo, maturin, venvs, toolchain
    probes, the MinGW toolchain (``mingw``), PE and ELF inspection (``pe``,
    ``wheels``), sdists, the workflow model.
``ci.core``
    The project model (``project``: cargo metadata + the Python crate's
    pyproject + ``[tool.maturin-suite]``, validated against
    ``maturin-suite.schema.json``), the context handed to every session,
    console, typed errors, findings, atomic artifact writes, and
    ``noxsupport``, the only module that knows nox.
"""
