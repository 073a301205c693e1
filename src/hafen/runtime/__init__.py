"""hafen-runtime: a runc-compatible OCI runtime written with the standard library only.

Entry points: ``hafen.runtime.main:main`` (the CLI, also ``python -S -m hafen.runtime``),
``hafen.runtime.protocol.Runtime`` (the lifecycle the daemon drives) and
``hafen.runtime.cli_runtime.OCIRuntimeCLI`` (that lifecycle over any runc-compatible
binary). This ``__init__`` imports nothing: the CLI runs on every container start.
"""
