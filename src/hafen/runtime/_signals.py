"""``signal`` for the runtime's start path, without its import cost.

The ``signal`` module wraps the C module ``_signal`` in ``IntEnum``s, and importing
``enum`` costs start-up time on every container start. The runtime only needs the
functions and the numbers, which ``_signal`` has; type checkers see ``signal``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal

__all__ = ["signal"]
