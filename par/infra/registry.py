"""A name → class registry (Mammoth's ``@register_model`` pattern)."""
from __future__ import annotations

from typing import Callable


class Registry(dict):
    """Classes by name; ``register`` is a class decorator, ``create`` instantiates."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: make the class available under ``name`` (sets ``cls.name``)."""
        def add(cls: type) -> type:
            cls.name = name
            self[name] = cls
            return cls
        return add

    def create(self, name: str, **options):
        """An instance of the class registered as ``name``; KeyError lists the choices."""
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {sorted(self)}")
        return self[name](**options)
