"""Growing bodies: Progressive Networks, Learn to Grow and MNTDP (docs/spec.md §9).

Each body is a :class:`par.nets.model.MultiHeadModel` body whose forward takes the
task (``forward(x, task)`` → (n, width) features; ``task_conditioned``), holds
every module any task so far uses, and describes itself by a JSON-able spec
(:meth:`spec`) that grows with the tasks, so a saved state rebuilds exactly
(:func:`par.nets.model.load_model`).  All use the light ResNet18 of docs/spec.md §7
(stem: 3×3 conv, BN, ReLU, max-pool 3/2; four stages of two BasicBlocks, all
``width`` channels, strides 1/2/2/2; average pool) and a linear head per task
(the model's ``heads``).  M (docs/spec.md §6) is :func:`par.nets.model.count_parameters`
of the whole model: every module inference on all tasks needs.

- ``pn`` (:class:`ProgressiveBody`; Rusu et al. 2016, authors'
  ``src/models/resnet_pn.py``): one column per task; column c ≥ 1 adds, per
  stage s, a lateral path ``u_s(ReLU(r_s(cat_j a_{s,j} · h_s^j)))`` summed
  onto its own stage output, where h_s^j is the input of stage s in earlier
  column j (computed through column j's own stem and stages, as the authors'
  code does: the lateral inputs are the earlier columns' plain paths), a_s an
  ``nn.Embedding(1, c)`` of per-source scales, r_s a 1×1 conv (c·w → w, with
  bias) and u_s a new residual stage of the column's stride; and at the head
  ``fc_u(ReLU(fc_r(cat_j a_j · f^j)))`` added to the task's logits (f^j the
  pooled features of column j; ``fc_r``: Linear(c·w, w), ``fc_u``:
  Linear(w, K)).
- ``ltg`` (:class:`GrowBody`; Li et al. 2019, authors' ``resnet_ltg.py``): per
  conv layer (stem, 16 block convs, 3 downsample convs) a library of conv
  *options*; task t uses, per layer, option i as is (``reuse``), option i plus
  its own 1×1 adapter (``adapt``), or a new option (``new``); BatchNorm is
  always the task's own.
- ``mntdp`` (:class:`ModularBody`; Veniat et al. 2021): a library of modules
  (depth 0 = stem, 1–4 = the stages); a task's path names one module per depth.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from par.nets.blocks import BasicBlock

from par.nets.bodies import register_body

STRIDES = (1, 2, 2, 2)
N_DEPTHS = 5  # stem + four stages: the modules of MNTDP


def _init(module: nn.Module) -> nn.Module:
    """The authors' initialisation: Kaiming-normal (fan_out, ReLU) for every conv."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return module


def make_stem(width: int, in_channels: int = 3) -> nn.Sequential:
    """3×3 conv (no bias) → BN → ReLU → max-pool 3/2: (n, 3, H, W) → (n, w, H/2, W/2)."""
    return _init(nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)))


def make_stage(width: int, stride: int) -> nn.Sequential:
    """Two BasicBlocks (par.nets.blocks, torchvision's) of ``width`` channels, the first with ``stride``
    (and a 1×1 conv + BN downsample when stride ≠ 1)."""
    down = None
    if stride != 1:
        down = nn.Sequential(nn.Conv2d(width, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))
    return _init(nn.Sequential(BasicBlock(width, width, stride, down), BasicBlock(width, width)))


def make_module(width: int, depth: int) -> nn.Sequential:
    """MNTDP module at ``depth``: 0 the stem, 1–4 the stages."""
    return make_stem(width) if depth == 0 else make_stage(width, STRIDES[depth - 1])


def pool(h: torch.Tensor) -> torch.Tensor:
    """Global average pool: (n, w, H, W) → (n, w)."""
    return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)


def column_parameters(width: int) -> int:
    """Parameters of one light ResNet18 body: 147·w² + 67·w (606 400 at w 64)."""
    return 147 * width ** 2 + 67 * width


def pn_lateral_parameters(width: int, sources: int, n_classes: int) -> int:
    """Parameters of column c's lateral connections from ``sources`` = c earlier
    columns: 5 scale vectors (5c), five 1×1 maps r (5·(c·w² + w): four convs and
    fc_r, with biases), the residual stages u (36w² + 8w, then 3·(37w² + 10w))
    and fc_u (w·K + K)."""
    if sources == 0:
        return 0
    w, c, k = width, sources, n_classes
    return 5 * c + 5 * (c * w * w + w) + (36 * w * w + 8 * w) + 3 * (37 * w * w + 10 * w) + (w * k + k)


def pn_parameters(width: int, classes: list[int]) -> int:
    """M of a Progressive Network after len(classes) tasks (column c has
    ``classes[c]`` classes): columns, heads (w·K + K) and laterals."""
    return sum(column_parameters(width) + width * k + k + pn_lateral_parameters(width, c, k)
               for c, k in enumerate(classes))


class ProgressiveBody(nn.Module):
    """Columns of a Progressive Network (spec ``{"kind": "pn", "width": w,
    "columns": [[task, n_classes], ...]}``, in order of the tasks).

    ``forward(x, task)``: (n, 3, H, W) → (n, w) features of the task's column
    (earlier columns feed it laterally); :meth:`head_lateral` adds the lateral
    term of the logits.  Raises KeyError for a task without a column.
    """

    task_conditioned = True

    def __init__(self, width: int = 64, columns: list | None = None):
        super().__init__()
        self.width = width
        self.out_features = width
        self.columns: list[tuple[int, int]] = []
        self.stem = nn.ModuleList()
        self.stages = nn.ModuleList()      # per column: ModuleList of 4 stages
        self.scale = nn.ModuleList()       # per column c >= 1: ModuleList of 5 Embedding(1, c)
        self.lateral_r = nn.ModuleList()   # per column c >= 1: 4 Conv2d(c·w, w, 1) and Linear(c·w, w)
        self.lateral_u = nn.ModuleList()   # per column c >= 1: 4 stages and Linear(w, K)
        for task, n_classes in columns or []:
            self.add_column(int(task), int(n_classes))

    def spec(self) -> dict:
        return {"kind": "pn", "width": self.width, "columns": [list(c) for c in self.columns]}

    def column_of(self, task: int) -> int:
        for c, (t, _) in enumerate(self.columns):
            if t == task:
                return c
        raise KeyError(f"task {task} has no column")

    def add_column(self, task: int, n_classes: int) -> None:
        """Add task ``task``'s column and, from the second column on, its laterals."""
        if any(t == task for t, _ in self.columns):
            raise ValueError(f"task {task} already has a column")
        w, c = self.width, len(self.columns)
        device = next(self.parameters()).device if len(self.columns) else torch.device("cpu")
        self.stem.append(make_stem(w).to(device))
        self.stages.append(nn.ModuleList(make_stage(w, s) for s in STRIDES).to(device))
        if c > 0:
            self.scale.append(nn.ModuleList(nn.Embedding(1, c) for _ in range(5)).to(device))
            self.lateral_r.append(nn.ModuleList([*(_init(nn.Conv2d(c * w, w, 1)) for _ in STRIDES),
                                                 nn.Linear(c * w, w)]).to(device))
            self.lateral_u.append(nn.ModuleList([*(make_stage(w, s) for s in STRIDES),
                                                 nn.Linear(w, n_classes)]).to(device))
        self.columns.append((task, n_classes))

    def column_modules(self, task: int) -> list[nn.Module]:
        """The modules column ``task`` owns (its stem, stages and laterals; not its head)."""
        c = self.column_of(task)
        mods = [self.stem[c], self.stages[c]]
        if c > 0:
            mods += [self.scale[c - 1], self.lateral_r[c - 1], self.lateral_u[c - 1]]
        return mods

    def _lateral(self, c: int, level: int, sources: list[torch.Tensor]) -> torch.Tensor:
        scale = self.scale[c - 1][level].weight[0]
        return torch.cat([scale[j] * h for j, h in enumerate(sources)], 1)

    def _forward(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        c = self.column_of(task)
        h = self.stem[c](x)
        prev = [self.stem[j](x) for j in range(c)]
        for s in range(4):
            out = self.stages[c][s](h)
            if c > 0:
                lateral = F.relu(self.lateral_r[c - 1][s](self._lateral(c, s, prev)))
                out = out + self.lateral_u[c - 1][s](lateral)
                prev = [self.stages[j][s](p) for j, p in enumerate(prev)]
            h = out
        return pool(h), [pool(p) for p in prev]

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        return self._forward(x, task)[0]

    def task_logits(self, x: torch.Tensor, task: int, head: nn.Linear) -> torch.Tensor:
        """head(features) + the lateral term fc_u(ReLU(fc_r(cat_j a_j f^j))): (n, K)."""
        h, prev = self._forward(x, task)
        logits = head(h)
        c = self.column_of(task)
        if c > 0:
            logits = logits + self.lateral_u[c - 1][4](F.relu(self.lateral_r[c - 1][4](self._lateral(c, 4, prev))))
        return logits

    def architecture(self, task: int) -> dict:
        c = self.column_of(task)
        return {"column": c + 1, "lateral_from_tasks": [t for t, _ in self.columns[:c]],
                "new": ["column", *(["laterals"] if c else [])], "reused": [f"column of task {t}" for t, _ in
                                                                           self.columns[:c]]}


class ModularBody(nn.Module):
    """MNTDP's module library (spec ``{"kind": "mntdp", "width": w, "modules":
    [[id, depth], ...], "paths": {task: [id at depth 0, …, id at depth 4]}}``).

    ``forward(x, task)``: the task's path, then the average pool → (n, w).
    ``active``: a task whose path may be set per batch (MNTDP-S search)."""

    task_conditioned = True

    def __init__(self, width: int = 64, modules: list | None = None, paths: dict | None = None):
        super().__init__()
        self.width = width
        self.out_features = width
        self.library = nn.ModuleDict()
        self.depth: dict[int, int] = {}
        self.paths: dict[int, list[int]] = {}
        for mid, depth in modules or []:
            self.add_module_at(int(depth), int(mid))
        for task, path in (paths or {}).items():
            self.paths[int(task)] = [int(m) for m in path]

    def spec(self) -> dict:
        return {"kind": "mntdp", "width": self.width, "modules": [[m, d] for m, d in sorted(self.depth.items())],
                "paths": {str(t): list(p) for t, p in sorted(self.paths.items())}}

    def add_module_at(self, depth: int, mid: int | None = None) -> int:
        """A new module at ``depth`` (fresh weights); returns its id."""
        mid = max(self.depth, default=-1) + 1 if mid is None else mid
        device = next(self.parameters()).device if len(self.library) else torch.device("cpu")
        self.library[str(mid)] = make_module(self.width, depth).to(device)
        self.depth[mid] = depth
        return mid

    def remove(self, ids) -> None:
        for mid in ids:
            del self.library[str(mid)]
            del self.depth[mid]

    def module(self, mid: int) -> nn.Module:
        return self.library[str(mid)]

    def path_forward(self, x: torch.Tensor, path: list[int]) -> torch.Tensor:
        for mid in path:
            x = self.module(mid)(x)
        return pool(x)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        return self.path_forward(x, self.paths[task])

    def used(self) -> set[int]:
        return {m for p in self.paths.values() for m in p}


# Conv layers of the light ResNet18 for Learn to Grow: (in, out, kernel, stride) per layer, in order:
# stem conv; per stage, per block: conv1, conv2 and (first block of a strided stage) the downsample.
def ltg_layers(width: int, in_channels: int = 3) -> list[tuple[int, int, int, int]]:
    layers = [(in_channels, width, 3, 1)]
    for stride in STRIDES:
        layers += [(width, width, 3, stride), (width, width, 3, 1)]
        if stride != 1:
            layers.append((width, width, 1, stride))
        layers += [(width, width, 3, 1), (width, width, 3, 1)]
    return layers


def new_conv(layer: tuple[int, int, int, int]) -> nn.Conv2d:
    """A new conv option for ``layer`` = (in, out, kernel, stride) (padding kernel // 2,
    no bias), with the authors' initialisation."""
    cin, cout, k, stride = layer
    return _init(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False))


def new_adapter(layer: tuple[int, int, int, int]) -> nn.Conv2d:
    """A new 1×1 adapter conv for ``layer`` = (in, out, kernel, stride) (the layer's
    stride, no bias), with the authors' initialisation."""
    cin, cout, _, stride = layer
    return _init(nn.Conv2d(cin, cout, 1, stride=stride, bias=False))


class GrowBody(nn.Module):
    """Learn to Grow's layer library (spec ``{"kind": "ltg", "width": w,
    "options": [n options per layer], "tasks": {task: [[action, option], ...]}}``,
    action ``reuse`` | ``adapt`` | ``new``; layers as :func:`ltg_layers`).

    Per layer ℓ: ``options[ℓ]`` convs (3×3 or the downsample's 1×1), the
    adapters ``adapter[ℓ][task]`` (1×1, same stride) of tasks that adapt, and a
    BatchNorm per task.  ``forward(x, task)`` → (n, w).  During a search,
    ``mix`` = (task, candidate modules, α per layer), set by the Learn-to-Grow
    strategy, replaces each layer's choice by its DARTS mixture (:meth:`mixed_conv`)."""

    task_conditioned = True

    def __init__(self, width: int = 64, options: list[int] | None = None, tasks: dict | None = None):
        super().__init__()
        self.width = width
        self.out_features = width
        self.layers = ltg_layers(width)
        self.options = nn.ModuleList(nn.ModuleList() for _ in self.layers)
        self.adapters = nn.ModuleList(nn.ModuleDict() for _ in self.layers)
        self.norms = nn.ModuleList(nn.ModuleDict() for _ in self.layers)
        self.arch: dict[int, list[tuple[str, int]]] = {}
        self.mix = None  # (task, search modules, softmax weights per layer) during a search
        for i, n in enumerate(options or []):
            for _ in range(n):
                self.options[i].append(new_conv(self.layers[i]))
        for task, choices in (tasks or {}).items():
            self.set_task(int(task), [(a, int(o)) for a, o in choices])

    def spec(self) -> dict:
        return {"kind": "ltg", "width": self.width, "options": [len(o) for o in self.options],
                "tasks": {str(t): [list(c) for c in a] for t, a in sorted(self.arch.items())}}

    def set_task(self, task: int, choices: list[tuple[str, int]]) -> None:
        """Give ``task`` its per-layer choices, creating its BatchNorms and adapters
        (fresh weights) where missing; ``new`` options must exist already."""
        if len(choices) != len(self.layers):
            raise ValueError(f"Learn to Grow needs one choice per layer ({len(self.layers)}), got {len(choices)}")
        device = next(self.parameters()).device if any(True for _ in self.parameters()) else torch.device("cpu")
        for i, (action, option) in enumerate(choices):
            if option >= len(self.options[i]):
                raise ValueError(f"layer {i}: option {option} does not exist")
            if str(task) not in self.norms[i]:
                self.norms[i][str(task)] = nn.BatchNorm2d(self.layers[i][1]).to(device)
            if action == "adapt" and str(task) not in self.adapters[i]:
                self.adapters[i][str(task)] = new_adapter(self.layers[i]).to(device)
        self.arch[task] = list(choices)

    def task_modules(self, task: int) -> list[nn.Module]:
        """Modules task ``task`` brought: its new options, adapters and BatchNorms."""
        mods = []
        for i, (action, option) in enumerate(self.arch[task]):
            mods.append(self.norms[i][str(task)])
            if action == "adapt":
                mods.append(self.adapters[i][str(task)])
            if action == "new":
                mods.append(self.options[i][option])
        return mods

    def mixed_conv(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """DARTS mixture of layer i (search): Σ_o (g_o + g_{c+o}) option_o(x) +
        Σ_o g_{c+o} adapter_o(x) + g_{2c} new(x), g = softmax(α_i) over 2c + 1."""
        _, search, alphas = self.mix
        g = torch.softmax(alphas[i], 0)
        c = len(self.options[i])
        out = g[2 * c] * search["new"][i](x)
        for o in range(c):
            out = out + (g[o] + g[c + o]) * self.options[i][o](x) + g[c + o] * search["adapt"][i][o](x)
        return out

    def _conv(self, i: int, x: torch.Tensor, task: int) -> torch.Tensor:
        if self.mix is not None and self.mix[0] == task:
            y = self.mixed_conv(i, x)
        else:
            action, option = self.arch[task][i]
            y = self.options[i][option](x)
            if action == "adapt":
                y = y + self.adapters[i][str(task)](x)
        return self.norms[i][str(task)](y)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        i = 0
        x = F.max_pool2d(F.relu(self._conv(0, x, task)), 3, stride=2, padding=1)
        i = 1
        for stride in STRIDES:
            for block in range(2):
                out = F.relu(self._conv(i, x, task))
                out = self._conv(i + 1, out, task)
                i += 2
                if block == 0 and stride != 1:
                    identity = self._conv(i, x, task)
                    i += 1
                else:
                    identity = x
                x = F.relu(out + identity)
        return pool(x)

    def architecture(self, task: int) -> dict:
        choices = self.arch[task]
        return {"layers": [f"{a} {o + 1}" for a, o in choices],  # option numbers 1-based
                "reuse": sum(a == "reuse" for a, _ in choices), "adapt": sum(a == "adapt" for a, _ in choices),
                "new": sum(a == "new" for a, _ in choices)}


@register_body("pn")
def pn_body(spec: dict) -> ProgressiveBody:
    """``{"kind": "pn", "width": w, "columns": [...]}`` (as grown so far; width default 64)."""
    return ProgressiveBody(spec.get("width", 64), spec.get("columns", []))


@register_body("mntdp")
def mntdp_body(spec: dict) -> ModularBody:
    """``{"kind": "mntdp", "width": w, "modules": [...], "paths": {...}}`` (as grown so far)."""
    return ModularBody(spec.get("width", 64), spec.get("modules", []), spec.get("paths", {}))


@register_body("ltg")
def ltg_body(spec: dict) -> GrowBody:
    """``{"kind": "ltg", "width": w, "options": [...], "tasks": {...}}`` (as grown so far)."""
    return GrowBody(spec.get("width", 64), spec.get("options"), spec.get("tasks", {}))
