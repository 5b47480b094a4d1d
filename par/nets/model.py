"""Models that learn tasks: a body (expert, light ResNet18, ...) with one head per task.

A body is described by a JSON-able *spec*, so that a saved model state can be
rebuilt without the code that created it:

- ``{"kind": "expert", "genotype": {...}, "channels": 64, "n_layers": 4, "stem_multiplier": 3,
  "factorized_reduce_bn": false}``
  (PAR, :class:`par.nets.cells.Expert`);
- ``{"kind": "light_resnet18", "width": 64}`` (baselines, docs/spec.md §7, :mod:`par.nets.resnet`);
- ``{"kind": "hat_light_resnet18", "width": 64}`` (HAT's gated variant, docs/spec.md §9) and
  ``{"kind": "hat_mlp", "in_features": d, "hidden": h}`` (:mod:`par.nets.hat_bodies`);
- ``{"kind": "pn" | "ltg" | "mntdp", "width": 64, ...}``: bodies that grow with
  the tasks and take the task in their forward (docs/spec.md §9, :mod:`par.nets.growing_bodies`);
  their spec grows too, and ``model.body_spec`` is updated when they grow.

Each kind is registered by its module (:mod:`par.nets.bodies`); :func:`build_body`
picks the builder by name.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# The body modules register their kinds on import (par.nets.bodies).
from par.nets import cells, growing_bodies, hat_bodies, resnet  # noqa: F401
from par.nets.bodies import BODIES
from par.infra.io import atomic_path

STATE_FORMAT = 1


def build_body(spec: dict) -> nn.Module:
    """A fresh body from its spec, by the builder registered for ``spec["kind"]``
    (:mod:`par.nets.bodies`); raises ValueError on an unknown kind, naming the known ones."""
    kind = spec["kind"]
    if kind not in BODIES:
        raise ValueError(f"unknown body kind {kind!r}; registered: {sorted(BODIES)}")
    return BODIES[kind](spec)


class MultiHeadModel(nn.Module):
    """A body shared by the tasks of a group, and one linear head per task.

    ``forward(x, task)``: (n, 3, H, W) → (n, n_classes of task) logits.
    ``carry``: tensors by name that a regularization baseline passes to the
    next task besides the weights (EWC/MAS importance, MAS-α anchors; see
    :mod:`par.learners.regularizers`); saved with the state, not parameters,
    not counted in M.  Empty for every other strategy.
    """

    def __init__(self, body_spec: dict, heads: dict[int, int] | None = None,
                 carry: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.body_spec = body_spec
        self.carry = dict(carry or {})
        self.body = build_body(body_spec)
        self.heads = nn.ModuleDict()
        for task, n_classes in (heads or {}).items():
            self.add_head(task, n_classes)

    @property
    def tasks(self) -> list[int]:
        return [int(k) for k in self.heads]

    def add_head(self, task: int, n_classes: int) -> None:
        """Add a fresh linear head for ``task``; raises ValueError if it exists."""
        if str(task) in self.heads:
            raise ValueError(f"task {task} already has a head")
        self.heads[str(task)] = nn.Linear(self.body.out_features, n_classes).to(
            next(self.body.parameters()).device)
        if hasattr(self.body, "add_task"):  # HAT: the task's embeddings and BN layers
            self.body.add_task(task)

    def head(self, task: int) -> nn.Linear:
        return self.heads[str(task)]

    def features(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """The body's output for ``task`` (a task-conditioned body, HAT's, gates its units by task)."""
        return self.body(x, task) if getattr(self.body, "task_conditioned", False) else self.body(x)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        if hasattr(self.body, "task_logits"):  # a growing body that routes the head itself (par/nets/growing_bodies.py)
            return self.body.task_logits(x, task, self.head(task))
        return self.head(task)(self.features(x, task))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable-kind parameters (BatchNorm running statistics are
    buffers and not counted; docs/spec.md §6)."""
    return sum(p.numel() for p in module.parameters())


def save_model(path: str | Path, model: MultiHeadModel) -> None:
    """Save body spec, heads, weights and ``model.carry`` (atomically, one file)
    so :func:`load_model` can rebuild the model."""
    body = model.body.spec() if hasattr(model.body, "spec") else model.body_spec  # growing bodies: as grown
    state = {"format": STATE_FORMAT, "body": body,
             "heads": {t: model.head(t).out_features for t in model.tasks},
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "carry": {k: v.detach().cpu() for k, v in model.carry.items()}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> MultiHeadModel:
    """Rebuild a model saved by :func:`save_model`, with its ``carry`` (kept on the CPU).

    Raises :class:`par.infra.io.CorruptFileError` when the file is not such a state.
    """
    from par.infra.io import CorruptFileError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = MultiHeadModel(state["body"], {int(t): int(c) for t, c in state["heads"].items()},
                               carry=state.get("carry", {}))
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, KeyError, EOFError, OSError) as err:
        raise CorruptFileError(f"{path} is not a readable model state ({err}); delete it and re-run.") from err
    return model.to(device)


def compile_body(model: nn.Module, backend: str = "inductor") -> None:
    """``training.compile``: compile ``model.body`` in place (:meth:`torch.nn.Module.compile`:
    its state_dict keys stay as they are, so saved states do not change format).  The
    compile cost falls on the first forward pass (the first epoch of the job); a new
    batch shape (the last, smaller batch; the evaluation chunk) compiles once more.
    ``backend``: :func:`torch.compile`'s (``eager`` traces without generating code, for tests)."""
    model.body.compile(backend=backend)
