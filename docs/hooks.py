"""MkDocs hook: the reference pages' tables, generated at build time from the code.

A page holds a marker line ``<!-- generated: NAME -->``; :func:`on_page_markdown`
replaces it with the Markdown that :data:`GENERATORS` [NAME] returns:

- ``config-keys``: every key of the config schema (``par.infra.config.load_schema()``,
  so method sections declared in code are included), with type, default, range,
  description and which jobs a change re-runs;
- ``stream-spec``: every key of ``par/data/streams/stream.schema.yaml``;
- ``parquet-columns``: every Parquet schema and provenance key of ``par/infra/schemas.py``.

The reference therefore cannot drift from the code; ``tests/test_docs.py`` checks
that every schema key is on the built page.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)

# Which jobs re-run when a key changes, per top-level key or section; a dotted key
# overrides its section.  What the workflow caches on (params, code hash) is
# described in docs/explanation/design.md; tests/test_workflow.py asserts the job sets.
RERUNS = {
    "results_dir": "everything, in the new folder (the old one is left as it is)",
    "data_root": "nothing: where the data lies is not a param",
    "benchmarks": "the jobs of an added benchmark; removing one runs nothing (its files stay)",
    "streams": "an appended task runs only its own jobs, then the distances, the plan, metrics and "
               "tables; a changed task re-runs its jobs and everything that reads them",
    "datasets": "the dataset's decoding and every task that reads it",
    "seeds": "the jobs of an added seed only",
    "device": "nothing (an execution setting)",
    "gpu_slots_per_device": "nothing (an execution setting)",
    "cudnn_benchmark": "nothing (an execution setting)",
    "eval_batch_size": "nothing (an execution setting: logits do not depend on it)",
    "threads": "nothing (an execution setting)",
    "stream": "every job of the benchmarks (task preparation first)",
    "extractor": "features, prototypes, distances and plans; PAR learn jobs only where the plan changes; "
                 "no baseline job",
    "extractor.batch_size": "nothing (an execution setting)",
    "relatedness": "the distances (a run that overrides them gets its own variant), the plan, and the PAR "
                   "tasks whose decision changes, with the tasks chained after them",
    "relatedness.zero_is_far": "the plan only, and the PAR tasks whose decision changes",
    "paper_targets": "only the generated runs that are added; runs with unchanged settings stay",
    "training": "the learn-task jobs of every run that uses the key (task 1 onwards), their metrics and "
                "the tables; no feature, prototype or distance job",
    "training.patience": "PAR's allocating tasks (the only ones that stop early), the tasks chained after "
                         "them, metrics and tables",
    "training.amp": "the learn jobs of every run, unless set back to its neutral value `off`",
    "training.compile": "every learn job, unless set back to its neutral value `false`",
    "planning": "the plan and the PAR tasks whose decision changes, the tasks chained after them, their "
                "metrics and the tables",
    "search": "PAR's cell searches and the learn jobs of the experts built from those cells",
    "expert": "PAR's cell searches and expert learn jobs",
    "backbone": "the learn jobs of the runs on the light ResNet18 (every method but par)",
    "lwf": "PAR's `regularize` tasks (the distillation within a task group)",
    "ewc": "tasks 2…N of `ewc` runs (task 1 has no penalty yet), their metrics and the tables",
    "lwf_baseline": "tasks 2…N of `lwf` runs",
    "mas": "tasks 2…N of `mas` runs (not `mas-alpha`)",
    "mas_alpha": "tasks 2…N of `mas-alpha` runs",
    "memory": "tasks 2…N of `er` and `agem` runs",
    "hat": "the learn jobs of `hat` runs",
    "ltg": "tasks 2…N of `ltg` runs (the search runs inside their learn jobs)",
    "mntdp": "tasks 2…N of `mntdp-s` and `mntdp-d` runs",
    "runs": "a new run adds its own jobs; a changed override re-runs what its section says, for that run only",
}
# A method section that RERUNS does not name (declared by a method class):
METHOD_SECTION_RERUNS = ("the learn-task jobs of the runs whose method reads this section, from the first "
                         "task that uses the key, their metrics and the tables")


def resolve(schema: dict, node: dict) -> dict:
    """``node`` with a local ``$ref`` (``#/$defs/<name>``) replaced by its target,
    the node's own keys (e.g. ``default``) kept."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**resolve(schema, target), **{k: v for k, v in node.items() if k != "$ref"}}


def walk(schema: dict, node: dict, prefix: str = "") -> Iterator[tuple[str, dict]]:
    """(dotted key, resolved node) of every key under ``node``, parents before
    children.  Free-form names read ``<name>`` (``runs.<name>.method``); the items
    of an array of objects read ``[]`` (``tasks[].dataset``)."""
    node = resolve(schema, node)
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        child = resolve(schema, child)
        yield path, child
        yield from walk(schema, child, path + ".")
        items = child.get("items")
        if isinstance(items, dict) and "properties" in resolve(schema, items):
            yield from walk(schema, items, path + "[].")
        extra = child.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in resolve(schema, extra):
            yield from walk(schema, extra, path + ".<name>.")


def _code(value) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    return f"`{text}`" if len(text) < 80 else f"`{text[:76]}…`"


def type_text(node: dict) -> str:
    """``integer``, ``number or null``, ``one of: a, b``, … of one schema node."""
    if "const" in node:
        return _code(node["const"])
    if "enum" in node:
        return "one of " + ", ".join(_code(v) for v in node["enum"])
    kinds = node.get("type")
    for combined in ("oneOf", "anyOf"):
        if kinds is None and combined in node:
            return " or ".join(filter(None, (type_text(o) for o in node[combined])))
    if isinstance(kinds, list):
        return " or ".join(kinds)
    if kinds == "array" and isinstance(node.get("items"), dict):
        inner = type_text(node["items"])
        return f"list of {inner}" if inner else "list"
    return kinds or ""


def range_text(node: dict) -> str:
    parts = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in node:
            parts.append(f"{sign} {node[key]:g}")
    if node.get("minItems") is not None and node.get("minItems") == node.get("maxItems"):
        parts.append(f"exactly {node['minItems']} items")
    elif "minItems" in node or "maxItems" in node:
        parts.append(f"{node.get('minItems', 0)}–{node.get('maxItems', '∞')} items")
    if "minLength" in node:
        parts.append(f"length ≥ {node['minLength']}")
    items = node.get("items")
    if isinstance(items, dict) and range_text(items):
        parts.append("each " + range_text(items))
    return ", ".join(parts)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _prose(text: str) -> str:
    """A schema description as table-cell text: ``<name>`` shown, not read as HTML;
    ``r[t][u]`` shown, not read as a Markdown reference link."""
    return _cell(text).replace("<", "&lt;").replace(">", "&gt;").replace("[", "\\[").replace("]", "\\]")


def key_rows(schema: dict, node: dict, prefix: str = "", reruns: Callable[[str], str] | None = None) -> str:
    """A Markdown table of every key under ``node``."""
    header = "| key | type | default | range | description |" + (" re-runs |" if reruns else "")
    lines = [header, "|" + "---|" * (6 if reruns else 5)]
    for path, child in walk(schema, node, prefix):
        default = _code(child["default"]) if "default" in child else ""
        row = [f"`{path}`", type_text(child), default, range_text(child), _prose(child.get("description", ""))]
        if reruns:
            row.append(reruns(path))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def reruns_of(path: str) -> str:
    """Which jobs a change of config key ``path`` re-runs (see :data:`RERUNS`)."""
    parts = path.replace(".<name>", "").split(".")
    if parts[0] == "runs" and len(parts) > 1:  # runs.<name>.<section>.<key>: that run only
        inner = ".".join(parts[1:])
        return (reruns_of(inner) + ", for that run only") if parts[1] != "method" else RERUNS["runs"]
    for depth in range(len(parts), 0, -1):
        key = ".".join(parts[:depth])
        if key in RERUNS:
            return RERUNS[key]
    return METHOD_SECTION_RERUNS


def run_rows(schema: dict, runs: dict) -> str:
    """The keys of one run, ``runs.<name>.…``: ``method`` in full; a section's keys are
    those of the global section (same type, default and range), listed by name."""
    run = resolve(schema, runs["additionalProperties"])
    lines = ["Each run is a method plus overrides of any section; a key under `runs.<name>.<section>` has "
             "the type, default and range of the global key of that section, and a run inherits every key it "
             "does not set.", "", "| key | type | description | re-runs |", "|---|---|---|---|"]
    for key, child in run["properties"].items():
        child = resolve(schema, child)
        path = f"runs.<name>.{key}"
        if "properties" in child:
            inner = ", ".join(f"`{path}.{k}`" for k, _ in walk(schema, child))
            text = f"overrides of [`{key}`](#{key}): {inner}"
        else:
            text = _prose(child.get("description", ""))
        lines.append(f"| `{path}` | {type_text(child)} | {text} | {reruns_of(path)} |")
    return "\n".join(lines)


def config_keys() -> str:
    """The config reference: top-level keys, then one table per section."""
    from par.infra.config import load_schema

    schema = load_schema()
    properties = schema["properties"]
    out = ["## Top-level keys", ""]
    scalar = {k: v for k, v in properties.items() if "properties" not in resolve(schema, v) and k != "runs"}
    out.append(key_rows(schema, {"properties": scalar}, reruns=reruns_of))
    for name, node in properties.items():
        if name in scalar:
            continue
        node = resolve(schema, node)
        out += ["", f"## `{name}`", "", node.get("description", "").strip(), ""]
        if name == "runs":
            out.append(run_rows(schema, node))
            continue
        out.append(key_rows(schema, node, name + ".", reruns=reruns_of))
    return "\n".join(out) + "\n"


def stream_spec() -> str:
    """The stream spec reference from ``stream.schema.yaml``."""
    import yaml

    import par

    schema = yaml.safe_load((Path(par.__file__).parent / "data" / "streams" / "stream.schema.yaml").read_text())
    return key_rows(schema, schema) + "\n"


def parquet_columns() -> str:
    """Every Parquet schema of ``par.infra.schemas``, column by column, and the provenance keys."""
    import pyarrow as pa

    from par.infra import schemas

    out = []
    for name, value in vars(schemas).items():
        if isinstance(value, pa.Schema):
            out += [f"### `{name}`", "", "| column | type | description |", "|---|---|---|"]
            for field in value:
                text = (field.metadata or {}).get(b"description", b"").decode()
                out.append(f"| `{field.name}` | {field.type} | {_prose(text)} |")
            out.append("")
    for name, value in vars(schemas).items():
        if name.startswith("PROVENANCE") and isinstance(value, dict):
            out += [f"### `{name}`", "", "| key | meaning |", "|---|---|"]
            out += [f"| `{k}` | {_prose(v)} |" for k, v in value.items()]
            out.append("")
    return "\n".join(out)


GENERATORS: dict[str, Callable[[], str]] = {
    "config-keys": config_keys,
    "stream-spec": stream_spec,
    "parquet-columns": parquet_columns,
}


def render(markdown: str) -> str:
    """``markdown`` with every marker replaced by its generated text; KeyError names an unknown marker."""
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # MkDocs hook
    return render(markdown)


# Docstrings write accuracy-matrix entries as r[t][u]; Markdown reads "[t][u]" as a reference
# link and mkdocs-autorefs then looks for a page anchor "u". A one-letter identifier is
# never an anchor of this site: show such a "link" as the text it was.
ONE_LETTER_REF = re.compile(r'<autoref [^>]*identifier="([A-Za-z])"[^>]*>(.*?)</autoref>', re.S)


def on_page_content(html: str, page, config, files) -> str:  # MkDocs hook
    return ONE_LETTER_REF.sub(lambda m: f"[{m.group(2)}][{m.group(1)}]", html)
