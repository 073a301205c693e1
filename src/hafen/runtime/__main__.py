"""``python -m hafen.runtime``: the same entry point as the ``hafen-runtime`` script."""

from __future__ import annotations

from hafen.runtime.main import main

raise SystemExit(main())
