"""The one exception hierarchy of hafen, mapped once to HTTP status and CLI exit codes.

    HafenError                      500  something failed in the engine
    ├── InvalidArgument             400  bad input: a field, flag, reference, file or archive
    │   ├── InvalidReference        400  an image reference that does not parse
    │   ├── InvalidConfig           400  a config.json / daemon.json / container config
    │   └── UnsafePath              400  an archive or copy path that escapes its root
    ├── NotFound                    404  no such container, image, volume, network, blob
    │   ├── ContainerNotFound       404
    │   └── ImageNotFound           404
    ├── Conflict                    409  the name is taken, the object is in use, wrong state
    │   └── NotRunning              409  the operation needs a running container
    ├── DigestMismatch              400  content did not hash to the digest it claimed
    ├── NotModified                 304  start of a started container, stop of a stopped one
    ├── Unauthorized                401  a registry refused the credentials (or wants some)
    ├── Forbidden                   403  refused by policy
    ├── RuntimeFailure              500  the OCI runtime or the shim failed
    ├── NotImplementedHere          501  a driver cannot do it (logs of --log-driver none)
    └── Unavailable                 503  the daemon cannot be reached / is shutting down

The API turns each into its status and Docker's ``{"message": "..."}`` body; the CLI
prints ``Error response from daemon: <message>`` and exits with 125. Messages name
what is wrong so that a user can act on them.

This module imports only the standard library: the runtime and the shim use it.
"""

from __future__ import annotations


class HafenError(Exception):
    """Base of every error hafen raises on purpose."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(HafenError):
    status = 400


class InvalidReference(InvalidArgument):
    pass


class InvalidConfig(InvalidArgument):
    pass


class UnsafePath(InvalidArgument):
    pass


class NotFound(HafenError):
    status = 404


class ContainerNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such container: {ref}")


class ImageNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")


class Conflict(HafenError):
    status = 409


class NotRunning(Conflict):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"Container {container_id} is not running")


class DigestMismatch(HafenError):
    status = 400


class NotModified(HafenError):
    status = 304


class Unauthorized(HafenError):
    status = 401


class Forbidden(HafenError):
    status = 403


class RuntimeFailure(HafenError):
    status = 500


class NotImplementedHere(HafenError):
    status = 501


class Unavailable(HafenError):
    status = 503


# Docker's CLI exit codes.
EXIT_DAEMON_ERROR = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127

__all__ = [
    "EXIT_CANNOT_INVOKE",
    "EXIT_DAEMON_ERROR",
    "EXIT_NOT_FOUND",
    "Conflict",
    "ContainerNotFound",
    "DigestMismatch",
    "Forbidden",
    "HafenError",
    "ImageNotFound",
    "InvalidArgument",
    "InvalidConfig",
    "InvalidReference",
    "NotFound",
    "NotImplementedHere",
    "NotModified",
    "NotRunning",
    "RuntimeFailure",
    "Unauthorized",
    "Unavailable",
    "UnsafePath",
]
