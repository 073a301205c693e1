"""``@record``: dataclass-style records without importing ``dataclasses`` or ``typing``.

What starts often (the runtime on every container start, the ``hafen`` CLI on every
command) pays for what it imports and builds: ``dataclasses`` pulls in ``inspect``,
``ast`` and ``dis``, and each ``@dataclass`` generates and compiles its methods at
import (~0.2-2 ms a class; 4.4 ms for the records ``hafen run`` loads). ``record`` gives
what those records use of a dataclass (keyword/positional ``__init__`` with defaults and
factories, ``__repr__``, ``__eq__``, ``frozen=True`` with ``__hash__``, ``replace`` and
``as_dict``) with generic methods built once, and type checkers see it as a dataclass
through ``dataclass_transform``. Everything else uses ``dataclasses``.
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


class FrozenRecordError(AttributeError):
    """Assignment to a field of a ``frozen`` record (as dataclasses.FrozenInstanceError)."""


def _record(cls: type[T], frozen: bool = False) -> type[T]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name in klass.__dict__.get("__annotations__", {}):  # noqa: RUF063 (no inspect)
            if name not in names:
                names.append(name)
    defaults = {n: getattr(cls, n, _MISSING) for n in names}
    fields = tuple(names)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        put = object.__setattr__  # the same for a frozen record
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments, got {len(args)}")
        for name, value in zip(fields, args, strict=False):
            put(self, name, value)
        for name in fields[len(args) :]:
            if name in kwargs:
                put(self, name, kwargs.pop(name))
                continue
            default = defaults[name]
            if default is _MISSING:
                raise TypeError(f"{cls.__name__}() missing argument {name!r}")
            put(self, name, default.make() if isinstance(default, _Factory) else default)
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
    if frozen:

        def __setattr__(self: Any, name: str, value: Any) -> None:
            raise FrozenRecordError(f"cannot assign to field {name!r} of {cls.__name__}")

        def __delattr__(self: Any, name: str) -> None:
            raise FrozenRecordError(f"cannot delete field {name!r} of {cls.__name__}")

        def __hash__(self: Any) -> int:
            return hash(tuple(getattr(self, n) for n in fields))

        cls.__setattr__ = __setattr__  # type: ignore[method-assign]
        cls.__delattr__ = __delattr__  # type: ignore[method-assign]
        cls.__hash__ = __hash__  # type: ignore[method-assign]
    cls.__record_fields__ = fields  # type: ignore[attr-defined]
    return cls


if TYPE_CHECKING:
    from typing import overload

    @overload
    @dataclass_transform(field_specifiers=(field,))
    def record(cls: type[T], /) -> type[T]: ...

    @overload
    @dataclass_transform(field_specifiers=(field,))
    def record(*, frozen: bool = False) -> Callable[[type[T]], type[T]]: ...

    @dataclass_transform(field_specifiers=(field,))
    def record(cls: type[T] | None = None, /, *, frozen: bool = False) -> Any: ...

else:

    def record(cls=None, /, *, frozen=False):
        """``@record`` or ``@record(frozen=True)``."""
        if cls is None:
            return lambda klass: _record(klass, frozen)
        return _record(cls, frozen)


def replace(obj: T, **changes: Any) -> T:
    """A copy of the record with ``changes`` (as ``dataclasses.replace``)."""
    values = {n: getattr(obj, n) for n in obj.__record_fields__}  # type: ignore[attr-defined]
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no fields {sorted(unknown)}")
    values.update(changes)
    return type(obj)(**values)


def as_dict(obj: object) -> dict[str, Any]:
    """The record's fields as a dict (shallow), as ``dataclasses.asdict`` for flat records."""
    return {n: getattr(obj, n) for n in obj.__record_fields__}  # type: ignore[attr-defined]
