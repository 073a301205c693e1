"""``@record``: dataclass-style records without importing ``dataclasses`` or ``typing``.

The runtime starts on every container start; ``dataclasses`` (which pulls in ``inspect``,
``ast``, ``dis``) and ``typing`` cost ~10 ms of import time there. ``record`` gives what
the runtime uses of a dataclass (keyword/positional ``__init__`` with defaults and
factories, ``__repr__``, ``__eq__``, ``as_dict``) and type checkers see it as a dataclass
through ``dataclass_transform``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A per-instance default, as ``dataclasses.field(default_factory=...)``."""
    return _Factory(default_factory)


_MISSING = object()


def _record(cls: type[T]) -> type[T]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name in klass.__dict__.get("__annotations__", {}):  # noqa: RUF063 (no inspect)
            if name not in names:
                names.append(name)
    defaults = {n: getattr(cls, n, _MISSING) for n in names}
    fields = tuple(names)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments, got {len(args)}")
        for name, value in zip(fields, args, strict=False):
            setattr(self, name, value)
        for name in fields[len(args) :]:
            if name in kwargs:
                setattr(self, name, kwargs.pop(name))
                continue
            default = defaults[name]
            if default is _MISSING:
                raise TypeError(f"{cls.__name__}() missing argument {name!r}")
            setattr(self, name, default.make() if isinstance(default, _Factory) else default)
        if kwargs:
            raise TypeError(f"{cls.__name__}() got unexpected arguments {sorted(kwargs)}")

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in fields)
        return f"{cls.__name__}({inner})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in fields)

    for name, default in defaults.items():
        if isinstance(default, _Factory):
            delattr(cls, name)
    cls.__init__ = __init__  # type: ignore[method-assign]
    cls.__repr__ = __repr__  # type: ignore[method-assign]
    cls.__eq__ = __eq__  # type: ignore[method-assign]
    cls.__hash__ = None  # type: ignore[assignment]
    cls.__record_fields__ = fields  # type: ignore[attr-defined]
    return cls


if TYPE_CHECKING:

    @dataclass_transform(field_specifiers=(field,))
    def record(cls: type[T]) -> type[T]: ...

else:
    record = _record


def as_dict(obj: object) -> dict[str, Any]:
    """The record's fields as a dict (shallow), as ``dataclasses.asdict`` for flat records."""
    return {n: getattr(obj, n) for n in obj.__record_fields__}  # type: ignore[attr-defined]
