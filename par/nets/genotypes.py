"""Genotypes: the discrete cells of the search space, as data (paper Sec. 3.3; docs/spec.md §4).

Torch-free, so that :mod:`par.nets.specs` can complete an expert's body spec
without importing torch.  The networks built from a genotype live in
:mod:`par.nets.cells`.
"""
from __future__ import annotations

from dataclasses import dataclass

# Candidate operations, in the authors' order (PAR_PRIMITIVES); index 0 is ``none``.
PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3")
STEPS = 4                                   # intermediate nodes per cell
N_EDGES = sum(2 + i for i in range(STEPS))  # 14 candidate edges


@dataclass(frozen=True)
class Genotype:
    """A discrete cell: for normal and reduction cells, two (operation, input node)
    pairs per intermediate node (8 pairs); input nodes 0, 1 are the cell inputs,
    2.. the intermediate nodes.  ``*_concat`` lists the nodes concatenated."""

    normal: tuple[tuple[str, int], ...]
    reduce: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...] = (2, 3, 4, 5)
    reduce_concat: tuple[int, ...] = (2, 3, 4, 5)

    def __post_init__(self):
        for kind in ("normal", "reduce"):
            pairs = getattr(self, kind)
            if len(pairs) != 2 * STEPS:
                raise ValueError(f"{kind} cell needs {2 * STEPS} (op, input) pairs, got {len(pairs)}")
            for i, (op, node) in enumerate(pairs):
                if op not in PRIMITIVES or op == "none":
                    raise ValueError(f"{kind}[{i}]: {op!r} is not an operation of a derived cell")
                if not 0 <= node < 2 + i // 2:
                    raise ValueError(f"{kind}[{i}]: input node {node} does not precede node {2 + i // 2}")

    def to_json(self) -> dict:
        return {"normal": [list(p) for p in self.normal], "reduce": [list(p) for p in self.reduce],
                "normal_concat": list(self.normal_concat), "reduce_concat": list(self.reduce_concat)}

    @classmethod
    def from_json(cls, d: dict) -> "Genotype":
        return cls(tuple((str(o), int(n)) for o, n in d["normal"]), tuple((str(o), int(n)) for o, n in d["reduce"]),
                   tuple(d.get("normal_concat", (2, 3, 4, 5))), tuple(d.get("reduce_concat", (2, 3, 4, 5))))


# DARTS-V2 (Liu et al. 2019), the fixed cell of ablation row "Fixed" (paper Table 5).
DARTS_V2 = Genotype(
    normal=(("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)),
    reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)),
)


def genotype_json(source: int | str, cell_file_genotype: dict | None) -> dict:
    """The genotype a new expert uses, as JSON: the fixed DARTS-V2 cell when
    ``source`` is ``"darts_v2"``, else the genotype read from the source task's
    cell file.  Raises ValueError when that file's genotype is missing."""
    if source == "darts_v2":
        return DARTS_V2.to_json()
    if cell_file_genotype is None:
        raise ValueError(f"the expert reuses the cell of task {source}, but no cell file was given")
    return Genotype.from_json(cell_file_genotype).to_json()
