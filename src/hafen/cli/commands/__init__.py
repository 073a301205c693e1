"""The CLI verbs, imported lazily by hafen.cli.main."""
