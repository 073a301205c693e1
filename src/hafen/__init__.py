"""hafen: a container engine that builds, ships and runs applications in containers.

This package's ``__init__`` imports nothing on purpose: ``hafen.runtime`` and
``hafen.shim`` run on every container start under ``python -S`` and must not pay for
anything they do not use.
"""

__version__ = "0.1.0"
API_VERSION = "1.45"
MIN_API_VERSION = "1.24"

__all__ = ["API_VERSION", "MIN_API_VERSION", "__version__"]
