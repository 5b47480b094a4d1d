"""The cell search space and the experts built from it (paper Sec. 3.3; docs/spec.md §4).

A cell is a DARTS-style DAG: two input nodes (outputs of the two previous
cells), four intermediate nodes, each fed by two of its predecessors, and an
output that concatenates the four intermediate nodes.  Every one of the 14
candidate edges carries one of six DARTS operations.

An expert is a stem (conv3×3 → 3C channels + BN), L cells of C channels with
reduction cells (stride 2) at indices L//3 and 2L//3 — channels are not doubled
— then global average pooling to 4C features.  Task heads sit on top
(:mod:`par.nets.model`).
"""
from __future__ import annotations

import torch
from torch import nn

from par.nets.bodies import register_body
from par.nets.genotypes import PRIMITIVES, STEPS, Genotype

class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class DilConv(nn.Sequential):
    """ReLU → depthwise conv (dilated) → pointwise conv → BN (DARTS)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convolutions (DARTS ``sep_conv``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
                         DilConv(c_in, c_out, kernel, 1, padding, 1, affine))


class Zero(nn.Module):
    """The ``none`` operation: zeros of the output shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1×1 convs of stride 2, concatenated.

    (n, c_in, H, W) → (n, c_out, ⌈H/2⌉, ⌈W/2⌉).  The BatchNorm is always built (its
    affine parameters count in M), but applied only with ``apply_bn``: the
    authors' code comments it out of ``forward`` (docs/spec.md §4, default False);
    DARTS applies it (``expert.factorized_reduce_bn: true``).
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True, apply_bn: bool = False):
        super().__init__()
        self.apply_bn = apply_bn
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        out = torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1)
        return self.bn(out) if self.apply_bn else out


def make_op(name: str, channels: int, stride: int, affine: bool, factorized_reduce_bn: bool = False) -> nn.Module:
    """One candidate operation (DARTS definitions), channels in = channels out."""
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine, factorized_reduce_bn)
    if name == "sep_conv_3x3":
        return SepConv(channels, channels, 3, stride, 1, affine)
    if name == "dil_conv_3x3":
        return DilConv(channels, channels, 3, stride, 2, 2, affine)
    raise KeyError(f"unknown operation {name!r}; choose from {PRIMITIVES}")


def reduction_layers(n_layers: int) -> set[int]:
    """Indices of reduction cells: L//3 and 2L//3 (docs/spec.md §4)."""
    return {n_layers // 3, 2 * n_layers // 3}


def _preprocess(c_prev_prev: int, c_prev: int, channels: int, reduction_prev: bool, affine: bool,
                factorized_reduce_bn: bool):
    pre0 = (FactorizedReduce(c_prev_prev, channels, affine, factorized_reduce_bn) if reduction_prev
            else ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine))
    return pre0, ReLUConvBN(c_prev, channels, 1, 1, 0, affine)


class Cell(nn.Module):
    """A cell with fixed operations given by a :class:`Genotype`."""

    def __init__(self, genotype: Genotype, c_prev_prev: int, c_prev: int, channels: int,
                 reduction: bool, reduction_prev: bool, factorized_reduce_bn: bool = False):
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = _preprocess(c_prev_prev, c_prev, channels, reduction_prev, True,
                                                         factorized_reduce_bn)
        pairs = genotype.reduce if reduction else genotype.normal
        self.concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.inputs = [node for _, node in pairs]
        self.ops = nn.ModuleList(
            make_op(op, channels, 2 if reduction and node < 2 else 1, affine=True,
                    factorized_reduce_bn=factorized_reduce_bn) for op, node in pairs
        )
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(STEPS):
            states.append(self.ops[2 * i](states[self.inputs[2 * i]])
                          + self.ops[2 * i + 1](states[self.inputs[2 * i + 1]]))
        return torch.cat([states[i] for i in self.concat], dim=1)


class _CellStack(nn.Module):
    """Stem (conv3×3 → ``stem_multiplier``·C channels + BN), then ``n_layers`` cells
    built by ``make_cell(c_prev_prev, c_prev, channels, reduction, reduction_prev)``
    with reductions at L//3 and 2L//3 (channels not doubled), then global pooling."""

    def __init__(self, make_cell, channels: int, n_layers: int, stem_multiplier: int, in_channels: int):
        super().__init__()
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_prev_prev, c_prev, reduction_prev = c_stem, c_stem, False
        self.cells = nn.ModuleList()
        for i in range(n_layers):
            reduction = i in reduction_layers(n_layers)
            cell = make_cell(c_prev_prev, c_prev, channels, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_features = c_prev

    def pooled(self, x: torch.Tensor, *cell_args) -> torch.Tensor:
        """(n, in_channels, H, W) → (n, out_features)."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, *cell_args)
        return self.pool(s1).flatten(1)


class Expert(_CellStack):
    """A task group's expert: stem, ``n_layers`` cells of ``genotype``, global pool.

    ``forward``: (n, in_channels, H, W) → (n, out_features) with out_features = 4·channels.
    Defaults are the paper's (C = 64, L = 4, stem 3C; docs/spec.md §4);
    ``factorized_reduce_bn`` see :class:`FactorizedReduce`.
    """

    def __init__(self, genotype: Genotype, channels: int = 64, n_layers: int = 4,
                 stem_multiplier: int = 3, in_channels: int = 3, factorized_reduce_bn: bool = False):
        super().__init__(lambda *args: Cell(genotype, *args, factorized_reduce_bn=factorized_reduce_bn),
                         channels, n_layers, stem_multiplier, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooled(x)


@register_body("expert")
def expert_body(spec: dict) -> Expert:
    """``{"kind": "expert", "genotype": {...}, "channels": C, "n_layers": L}`` with optional
    ``stem_multiplier`` (default 3) and ``factorized_reduce_bn`` (default false)."""
    return Expert(Genotype.from_json(spec["genotype"]), channels=spec["channels"], n_layers=spec["n_layers"],
                  stem_multiplier=spec.get("stem_multiplier", 3),
                  factorized_reduce_bn=spec.get("factorized_reduce_bn", False))


class MixedOp(nn.Module):
    """All candidate operations of one edge of the one-shot supernet; one is run per step."""

    def __init__(self, channels: int, stride: int, factorized_reduce_bn: bool = False):
        super().__init__()
        ops = []
        for name in PRIMITIVES:
            op = make_op(name, channels, stride, affine=False, factorized_reduce_bn=factorized_reduce_bn)
            if "pool" in name:  # as in DARTS search: pools get a non-affine BN
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, op_index: int) -> torch.Tensor:
        return self.ops[op_index](x)


class SearchCell(nn.Module):
    """A supernet cell: every one of the 14 edges runs the operation chosen for it."""

    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, reduction: bool, reduction_prev: bool,
                 factorized_reduce_bn: bool = False):
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = _preprocess(c_prev_prev, c_prev, channels, reduction_prev, False,
                                                         factorized_reduce_bn)
        self.edges = nn.ModuleList(
            MixedOp(channels, 2 if reduction and j < 2 else 1, factorized_reduce_bn)
            for i in range(STEPS) for j in range(2 + i)
        )
        self.multiplier = STEPS

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, ops: list[int]) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        edge = 0
        for _ in range(STEPS):
            new = sum(self.edges[edge + j](h, ops[edge + j]) for j, h in enumerate(states))
            edge += len(states)
            states.append(new)
        return torch.cat(states[-STEPS:], dim=1)


class SuperNet(_CellStack):
    """The one-shot network of the MDL search: ``forward(x, normal_ops, reduce_ops)``
    with one operation index (into :data:`PRIMITIVES`) per edge for each cell type.

    ``stem_multiplier`` defaults to 1 as in the authors' search network
    (src/automl/par_basicmodel.py).  ``factorized_reduce_bn`` see
    :class:`FactorizedReduce`.  Output: (n, n_classes) logits.
    """

    def __init__(self, n_classes: int, channels: int = 64, n_layers: int = 4,
                 stem_multiplier: int = 1, in_channels: int = 3, factorized_reduce_bn: bool = False):
        super().__init__(lambda *args: SearchCell(*args, factorized_reduce_bn=factorized_reduce_bn),
                         channels, n_layers, stem_multiplier, in_channels)
        self.classifier = nn.Linear(self.out_features, n_classes)

    def forward(self, x: torch.Tensor, normal_ops: list[int], reduce_ops: list[int]) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce_ops if cell.reduction else normal_ops)
        return self.classifier(self.pool(s1).flatten(1))
