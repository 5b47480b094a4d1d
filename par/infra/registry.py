"""A name → class registry (Mammoth's ``@register_model`` pattern)."""
from __future__ import annotations

from typing import Callable


class RegistrationError(ValueError):
    """A name registered twice by two different classes; the message names both."""


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class Registry(dict):
    """Classes by name; ``register`` is a class decorator, ``create`` instantiates."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: make the class available under ``name`` (sets ``cls.name``).

        Raises :class:`RegistrationError` when ``name`` is already registered by
        another class (another module or qualified name).  The same class
        registering again (its module executed a second time) replaces the entry.
        """
        def add(cls: type) -> type:
            existing = self.get(name)
            if existing is not None and _origin(existing) != _origin(cls):
                raise RegistrationError(f"{self.kind} {name!r} of {_origin(cls)} is already registered by "
                                        f"{_origin(existing)}; choose another name")
            cls.name = name
            self[name] = cls
            return cls
        return add

    def create(self, name: str, **options):
        """An instance of the class registered as ``name``; KeyError lists the choices."""
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {sorted(self)}")
        return self[name](**options)
