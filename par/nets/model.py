"""Models that learn tasks: a body (expert or light ResNet18) with one head per task.

A body is described by a JSON-able *spec*, so that a saved model state can be
rebuilt without the code that created it:

- ``{"kind": "expert", "genotype": {...}, "channels": 64, "n_layers": 4, "stem_multiplier": 3,
  "factorized_reduce_bn": false}``
  (PAR, :class:`par.nets.cells.Expert`);
- ``{"kind": "light_resnet18", "width": 64}`` (baselines, docs/spec.md §7);
- ``{"kind": "hat_light_resnet18", "width": 64}`` (HAT's gated variant, docs/spec.md §10,
  :mod:`par.nets.hat_bodies`);
- ``{"kind": "pn" | "ltg" | "mntdp", "width": 64, ...}``: bodies that grow with
  the tasks and take the task in their forward (docs/spec.md §10, :mod:`par.nets.growing_bodies`);
  their spec grows too, and ``model.body_spec`` is updated when they grow.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from par.nets.blocks import BasicBlock
from par.nets.cells import Expert, Genotype
from par.infra.io import atomic_path

STATE_FORMAT = 1
GROWING_KINDS = ("pn", "ltg", "mntdp")


class LightResNet18(nn.Module):
    """The light ResNet18 of MNTDP (docs/spec.md §7): conv3×3 3→w, BN, ReLU, maxpool 3/2,
    4 stages × 2 BasicBlocks (par.nets.blocks, torchvision's), all ``width`` channels, strides 1/2/2/2,
    global average pool → (n, width).  ≈ 0.606 M parameters at width 64."""

    def __init__(self, width: int = 64, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)]
        for stride in (1, 2, 2, 2):
            down = None
            if stride != 1:
                down = nn.Sequential(nn.Conv2d(width, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))
            layers += [BasicBlock(width, width, stride, down), BasicBlock(width, width)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.out_features = width
        for m in self.modules():  # the authors' initialisation (src/models/resnet.py)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def build_body(spec: dict) -> nn.Module:
    """A fresh body from its spec; raises ValueError on an unknown kind."""
    kind = spec["kind"]
    if kind == "expert":
        return Expert(Genotype.from_json(spec["genotype"]), channels=spec["channels"], n_layers=spec["n_layers"],
                      stem_multiplier=spec.get("stem_multiplier", 3),
                      factorized_reduce_bn=spec.get("factorized_reduce_bn", False))
    if kind == "light_resnet18":
        return LightResNet18(width=spec.get("width", 64))
    if kind in GROWING_KINDS:  # PN, Learn to Grow, MNTDP (docs/spec.md §10): par/nets/growing_bodies.py
        from par.nets.growing_bodies import build_growing_body

        return build_growing_body(spec)
    if kind == "hat_light_resnet18":  # HAT's gated variant (docs/spec.md §10)
        from par.nets.hat_bodies import HATLightResNet18

        return HATLightResNet18(width=spec.get("width", 64))
    if kind == "hat_mlp":
        from par.nets.hat_bodies import HATMLP

        return HATMLP(spec["in_features"], spec["hidden"])
    raise ValueError(f"unknown body kind {kind!r}")


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
