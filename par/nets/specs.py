"""Body specs: the JSON dicts from which :func:`par.nets.model.build_body` builds a body.

A spec names its ``kind`` (a key of :data:`par.nets.bodies.BODIES`) and that
kind's sizes.  Every fresh body of a learn job is specified here, in two steps:

1. :func:`body_spec`, when the workflow is parsed: the kind and the sizes from
   the run's config (``expert`` or ``backbone`` section).  It is part of the
   learn job's params, so a change to a size re-runs exactly the jobs that
   build such a body.
2. :func:`with_genotype`, in the learn job: an expert's genotype (paper
   Sec. 3.3), which comes from an input file, the cell that the MDL search of
   the source task found; Snakemake re-runs the job when that file changes.

Torch-free: the run policy (:mod:`par.runs`) imports it at parse time.
"""
from __future__ import annotations

from par.nets.genotypes import genotype_json


def body_spec(settings: dict, body_kind: str) -> dict:
    """The spec of a fresh body of ``body_kind`` (a method's ``body_kind``) from
    a run's ``settings`` (one dict per config section): ``"expert"`` takes the
    ``expert`` section (channels, cell layers, ...; no genotype yet, see
    :func:`with_genotype`), every other kind the ``backbone`` section (the
    light ResNet18's sizes).  A new dict; KeyError when the section is missing."""
    section = "expert" if body_kind == "expert" else "backbone"
    return {"kind": body_kind, **settings[section]}


def with_genotype(body: dict | None, genotype_source: int | str, cell_genotype: dict | None) -> dict | None:
    """The full spec of the body a learn job builds, from :func:`body_spec`'s
    ``body`` (None where the task continues its predecessor's body): an
    expert's gets its ``genotype``, the fixed DARTS-V2 cell where
    ``genotype_source`` (the plan's assignment) is ``"darts_v2"``, else
    ``cell_genotype``, the genotype in the source task's cell file
    (:func:`par.nets.genotypes.genotype_json`).  ``body`` itself is returned
    for other kinds and for None.  Raises ValueError for an expert that reuses
    a cell when ``cell_genotype`` is None."""
    if body is None or body["kind"] != "expert":
        return body
    return {**body, "genotype": genotype_json(genotype_source, cell_genotype)}
