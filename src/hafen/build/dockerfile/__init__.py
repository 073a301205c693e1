"""The Dockerfile language: parser (``parser.py``) and variable expansion (``expand.py``)."""

from hafen.build.dockerfile.expand import ExpansionError, process_word, process_words
from hafen.build.dockerfile.parser import (
    Dockerfile,
    DockerfileSyntaxError,
    Heredoc,
    Node,
    parse,
)

__all__ = [
    "Dockerfile",
    "DockerfileSyntaxError",
    "ExpansionError",
    "Heredoc",
    "Node",
    "parse",
    "process_word",
    "process_words",
]
