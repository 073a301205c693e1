"""hafen-runtime: a runc-compatible OCI runtime written in Python on its standard library
(the Linux calls ``posix`` lacks are a small C module, ``_linux``; ctypes where not built).

Entry points: ``hafen.runtime.main:main`` (the CLI; ``command`` is how hafen runs it),
``hafen.runtime.protocol.Runtime`` (the lifecycle the daemon drives) and
``hafen.runtime.cli_runtime.OCIRuntimeCLI`` (that lifecycle over any runc-compatible
binary). This ``__init__`` imports nothing: the CLI runs on every container start.
"""

# ``python -S -c ENTRY`` runs the CLI (``__main__``) without runpy, which ``-m`` imports
# first: ~4 ms of a ~25 ms container start. ``-S``: the runtime needs only the stdlib.
ENTRY = "import hafen.runtime.__main__"


def command(python: str) -> list[str]:
    """The argv prefix that runs hafen-runtime with ``python`` (put ``hafen`` on
    PYTHONPATH: ``-S`` skips site-packages). ``-P``: ``-c`` would put the working
    directory first on ``sys.path``, and a runtime runs as root in directories others
    may write to (a bundle): a ``struct.py`` there must not be what ``import struct``
    runs."""
    return [python, "-S", "-P", "-c", ENTRY]


def is_cli(prefix: list[str]) -> bool:
    """Whether ``prefix`` runs hafen-runtime's CLI: ``<python> [flags] -c ENTRY`` or
    ``<python> [flags] -m hafen.runtime``."""
    if len(prefix) < 3 or not prefix[0].rsplit("/", 1)[-1].startswith("python"):
        return False
    if prefix[-2:] not in (["-c", ENTRY], ["-m", "hafen.runtime"]):
        return False
    return all(arg.startswith("-") and arg not in ("-m", "-c") for arg in prefix[1:-2])
