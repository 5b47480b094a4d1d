"""Networks with HAT's per-task unit gates (Serra et al. ICML 2018; joansj/hat
``src/networks/alexnet_hat.py``, ``mlp_hat.py``), used by the ``hat`` strategy
(:mod:`par.learners.hat`).

Every gated layer l has, per task t, an embedding e_t^l (one value per unit:
an output channel or neuron, initialised N(0, 1) like ``nn.Embedding``); the
layer's output is multiplied by the gate a_t^l = σ(s · e_t^l).  In training the
strategy sets ``s`` (annealed over each epoch's batches); in eval mode the
gates use ``s_max``.  ``weight_masks`` gives, per weight tensor, the min of the
gates of its output unit and input unit (joansj's ``get_view_for``), from which
the strategy restricts gradients.

Bodies here:

- :class:`HATLightResNet18`: the light ResNet18 of docs/spec.md §7 (as
  :class:`par.nets.resnet.LightResNet18`), gated after the stem (after max-pool, as
  joansj gates after pooling), after each BasicBlock's first conv (BN, ReLU) and
  after each block's output (the residual sum, ReLU); a downsample conv shares
  its block's output gate.  BatchNorm is **per task** (a set of BN layers per
  task, created with its head): a shared BN's running statistics would drift
  with every new task and change the earlier tasks' outputs, which HAT's
  gradient masks cannot prevent (joansj's AlexNet has no BN).  The per-task BN
  parameters and embeddings are network parameters and count in M.
- :class:`HATMLP`: two gated linear layers (joansj's ``mlp_hat``), for tests.

Body specs: ``{"kind": "hat_light_resnet18", "width": 64}``,
``{"kind": "hat_mlp", "in_features": n, "hidden": h}``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from par.nets.bodies import register_body


class HATBody(nn.Module):
    """Per-task embeddings of the gated layers (``gate_sizes``: name → units);
    ``embeddings[str(task)][name]``: (units,) parameters."""

    task_conditioned = True

    def __init__(self, gate_sizes: dict[str, int], s_max: float = 400.0):
        super().__init__()
        self.gate_sizes = dict(gate_sizes)
        self.embeddings = nn.ModuleDict()
        self.s_max = s_max            # gates in eval mode (joansj: s = smax at test time)
        self.s: float | None = None   # set by the strategy for each training batch

    def add_task(self, task: int) -> None:
        """Embeddings (N(0, 1), as ``nn.Embedding``) for a new task; subclasses add its BN layers."""
        device = next(self.parameters()).device
        self.embeddings[str(task)] = nn.ParameterDict(
            {name: nn.Parameter(torch.randn(units, device=device)) for name, units in self.gate_sizes.items()})

    def mask(self, task: int, s: float) -> dict[str, torch.Tensor]:
        """Gates σ(s · e_t^l) of every gated layer: name → (units,)."""
        return {name: torch.sigmoid(s * e) for name, e in self.embeddings[str(task)].items()}

    def current_s(self) -> float:
        return self.s if (self.training and self.s is not None) else self.s_max


class HATMLP(HATBody):
    """Two gated linear layers with ReLU (joansj's ``mlp_hat``, without dropout):
    x (n, ...) flattened to (n, in_features) → fc1 → ReLU → ·a¹ → fc2 → ReLU → ·a² → (n, hidden)."""

    def __init__(self, in_features: int, hidden: int):
        super().__init__({"fc1": hidden, "fc2": hidden})
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out_features = hidden

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        g = self.mask(task, self.current_s())
        h = F.relu(self.fc1(x.flatten(1))) * g["fc1"]
        return F.relu(self.fc2(h)) * g["fc2"]

    def weight_masks(self, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per parameter name: the gate of each weight's output unit, min'ed with its
        input unit's (joansj ``get_view_for``); biases take their unit's gate."""
        return {"fc1.weight": masks["fc1"].view(-1, 1).expand_as(self.fc1.weight),
                "fc1.bias": masks["fc1"],
                "fc2.weight": torch.min(masks["fc2"].view(-1, 1), masks["fc1"].view(1, -1)).expand_as(self.fc2.weight),
                "fc2.bias": masks["fc2"]}


class HATBlock(nn.Module):
    """A BasicBlock whose BN layers are passed per task and whose conv1 output and
    block output are gated."""

    def __init__(self, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.down = nn.Conv2d(width, width, 1, stride=stride, bias=False) if stride != 1 else None

    def forward(self, x, norms: nn.ModuleDict, prefix: str, g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        h = F.relu(norms[f"{prefix}_bn1"](self.conv1(x))) * g1.view(1, -1, 1, 1)
        h = norms[f"{prefix}_bn2"](self.conv2(h))
        shortcut = x if self.down is None else norms[f"{prefix}_down"](self.down(x))
        return F.relu(h + shortcut) * g2.view(1, -1, 1, 1)


class HATLightResNet18(HATBody):
    """The light ResNet18 (docs/spec.md §7) with HAT gates and per-task BatchNorm (module
    docstring).  17 gated layers of ``width`` units: ``stem``, ``block<i>_conv1``
    and ``block<i>_out`` for i = 0…7; 1088 units at width 64.
    ``forward(x, task)``: (n, 3, H, W) → (n, width)."""

    STRIDES = (1, 1, 2, 1, 2, 1, 2, 1)

    def __init__(self, width: int = 64, in_channels: int = 3):
        gates = {"stem": width}
        for i in range(len(self.STRIDES)):
            gates[f"block{i}_conv1"] = width
            gates[f"block{i}_out"] = width
        super().__init__(gates)
        self.width = width
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.blocks = nn.ModuleList([HATBlock(width, s) for s in self.STRIDES])
        self.norms = nn.ModuleDict()
        self.out_features = width
        for m in self.modules():  # the authors' initialisation (src/models/resnet.py), as LightResNet18
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def add_task(self, task: int) -> None:
        super().add_task(task)
        device = self.stem.weight.device
        names = ["stem"] + [f"block{i}_{k}" for i, b in enumerate(self.blocks)
                            for k in (("bn1", "bn2", "down") if b.down is not None else ("bn1", "bn2"))]
        self.norms[str(task)] = nn.ModuleDict({n: nn.BatchNorm2d(self.width) for n in names}).to(device)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        g = self.mask(task, self.current_s())
        norms = self.norms[str(task)]
        h = F.max_pool2d(F.relu(norms["stem"](self.stem(x))), 3, stride=2, padding=1) * g["stem"].view(1, -1, 1, 1)
        for i, block in enumerate(self.blocks):
            h = block(h, norms, f"block{i}", g[f"block{i}_conv1"], g[f"block{i}_out"])
        return F.adaptive_avg_pool2d(h, 1).flatten(1)

    def weight_masks(self, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per conv weight (names relative to the body): min(gate of its output
        channel, gate of its input channel), expanded to the weight's shape; the
        stem's input is the image (its output gate only).  Per-task BN layers are
        not shared and need no mask."""
        def view(post, pre, weight):
            m = post.view(-1, 1, 1, 1) if pre is None else torch.min(post.view(-1, 1, 1, 1), pre.view(1, -1, 1, 1))
            return m.expand_as(weight)

        out = {"stem.weight": view(masks["stem"], None, self.stem.weight)}
        previous = masks["stem"]
        for i, block in enumerate(self.blocks):
            g1, g2 = masks[f"block{i}_conv1"], masks[f"block{i}_out"]
            out[f"blocks.{i}.conv1.weight"] = view(g1, previous, block.conv1.weight)
            out[f"blocks.{i}.conv2.weight"] = view(g2, g1, block.conv2.weight)
            if block.down is not None:
                out[f"blocks.{i}.down.weight"] = view(g2, previous, block.down.weight)
            previous = g2
        return out


@register_body("hat_light_resnet18")
def hat_light_resnet18_body(spec: dict) -> HATLightResNet18:
    """``{"kind": "hat_light_resnet18", "width": w}`` (width default 64)."""
    return HATLightResNet18(width=spec.get("width", 64))


@register_body("hat_mlp")
def hat_mlp_body(spec: dict) -> HATMLP:
    """``{"kind": "hat_mlp", "in_features": d, "hidden": h}`` (two gated linear layers of h units)."""
    return HATMLP(spec["in_features"], spec["hidden"])
