"""Body kinds by name (the ``kind`` of a body spec), as methods are chosen by name.

Each body module registers a builder of its kind(s) with :func:`register_body`:
a function from the JSON-able spec to a fresh ``nn.Module`` with
``out_features``.  :func:`par.nets.model.build_body` imports every body module,
so all kinds are registered when a model is built.  Adding a body kind is one
decorated function in its module (and its import in :mod:`par.nets.model`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from par.infra.registry import Registry

if TYPE_CHECKING:
    from torch import nn

BODIES = Registry("body kind")


def register_body(kind: str) -> Callable[[Callable[[dict], "nn.Module"]], Callable[[dict], "nn.Module"]]:
    """Decorator: make a builder ``spec dict -> nn.Module`` the one for body kind ``kind``."""
    return BODIES.register(kind)
