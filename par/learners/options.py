"""A method's config section, declared as data on its strategy class.

A strategy that reads hyperparameters from the config declares them once, as a
:class:`ConfigSection` of :class:`Option` values: key, JSON type, range,
default and a one-line description.  The declaration is torch-free, so the
workflow reads it while it is parsed; the config schema's section for the
method, the documentation's config reference and the strategy's constructor
defaults all come from it::

    SI_SECTION = ConfigSection("si", "Synaptic Intelligence (Zenke et al. 2017)", {
        "c": Option(0.1, "number", "weight of the surrogate loss c", minimum=0),
        "xi": Option(1e-3, "number", "damping xi of Omega", exclusive_minimum=0),
    })

    @register_strategy("si")
    class SI(Finetune):
        config = SI_SECTION
        config_keys = {"c": "c", "xi": "xi"}

        def __init__(self, c: float = SI_SECTION.default("c"), xi: float = SI_SECTION.default("xi")):
            ...
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON_TYPES = ("number", "integer", "boolean", "string")


@dataclass(frozen=True)
class Option:
    """One key of a config section.

    ``type`` is a JSON-schema type name (:data:`JSON_TYPES`); ``enum`` lists
    the allowed values instead (then ``type`` may be None).  Bounds follow
    JSON schema: ``minimum``/``maximum`` inclusive, ``exclusive_minimum``/
    ``exclusive_maximum`` strict.  ``description`` says what the key does and
    where its default comes from (paper section, authors' script).

    Raises ValueError when the type is unknown or the default breaks the
    declaration's own type, range or enum.
    """

    default: Any
    type: str | None
    description: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    enum: tuple | None = None

    def __post_init__(self):
        if self.type is None and self.enum is None:
            raise ValueError("an Option needs a type or an enum")
        if self.type is not None and self.type not in JSON_TYPES:
            raise ValueError(f"Option type {self.type!r} is not one of {JSON_TYPES}")
        if self.enum is not None and self.default not in self.enum:
            raise ValueError(f"Option default {self.default!r} is not one of its enum {list(self.enum)}")
        number = isinstance(self.default, (int, float)) and not isinstance(self.default, bool)
        if self.type in ("number", "integer") and not number:
            raise ValueError(f"Option default {self.default!r} is not a {self.type}")
        if self.type == "integer" and not isinstance(self.default, int):
            raise ValueError(f"Option default {self.default!r} is not an integer")
        if self.type == "boolean" and not isinstance(self.default, bool):
            raise ValueError(f"Option default {self.default!r} is not a boolean")
        if self.type == "string" and not isinstance(self.default, str):
            raise ValueError(f"Option default {self.default!r} is not a string")
        if number:
            for bound, ok in ((self.minimum, lambda b: self.default >= b), (self.maximum, lambda b: self.default <= b),
                              (self.exclusive_minimum, lambda b: self.default > b),
                              (self.exclusive_maximum, lambda b: self.default < b)):
                if bound is not None and not ok(bound):
                    raise ValueError(f"Option default {self.default!r} is outside its declared range")

    def json_schema(self) -> dict:
        """The key's JSON-schema property (``default`` and ``description`` included)."""
        schema: dict[str, Any] = {}
        if self.type is not None:
            schema["type"] = self.type
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        for name, value in (("minimum", self.minimum), ("maximum", self.maximum),
                            ("exclusiveMinimum", self.exclusive_minimum),
                            ("exclusiveMaximum", self.exclusive_maximum)):
            if value is not None:
                schema[name] = value
        schema["default"] = self.default
        schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class ConfigSection:
    """A top-level config section (also accepted inside each entry of ``runs``).

    ``name`` is the config key (``si``); ``options`` maps each key of the
    section to its :class:`Option`.  Several strategies may share one section
    (ER and A-GEM share ``memory``): they declare the same object.
    """

    name: str
    description: str
    options: dict[str, Option] = field(default_factory=dict)

    def default(self, key: str) -> Any:
        """The declared default of ``key``; KeyError names the section's keys."""
        if key not in self.options:
            raise KeyError(f"config section {self.name!r} declares no key {key!r}; it has {sorted(self.options)}")
        return self.options[key].default

    def defaults(self) -> dict[str, Any]:
        """Every key's default: the section as a config that sets nothing gives it."""
        return {key: option.default for key, option in self.options.items()}

    def json_schema(self) -> dict:
        """The section's JSON schema: an object of exactly the declared keys."""
        return {"type": "object", "description": self.description, "additionalProperties": False,
                "properties": {key: option.json_schema() for key, option in self.options.items()}}
