"""The import graph of par/: every import, at module level or inside a function, of one
par module by another.  No cycles; the stage packages in layers, none importing a higher
(or a sibling) layer; no two modules share a file name; package ``__init__.py`` files are
empty (they are part of every code hash)."""
import ast
from pathlib import Path

PAR = Path(__file__).resolve().parents[1] / "par"


def module_name(path: Path) -> str:
    parts = path.relative_to(PAR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """par module → the par modules it imports (``from par.x import y`` counts
    ``par.x.y`` when that is a module, else ``par.x``)."""
    modules = {module_name(p): p for p in PAR.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        # a package's submodules import it implicitly; that is not a cycle of ours
        graph[name] = {t for t in edges if not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by depth-first search (one per back edge)."""
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_par_has_no_import_cycles():
    graph = import_graph()
    assert "par.streams.prepare" in graph and "par.streams.tasks" in graph["par.streams.prepare"]
    assert cycles(graph) == []


# The packages of par/ in layers, lowest first, derived from the import graph: a package
# imports only packages of strictly lower layers (infrastructure, then the stages of the
# paper in the order their outputs are used).
LAYERS = [
    ["par.infra"],
    ["par.streams", "par.nets", "par.planning"],
    ["par.relatedness", "par.training"],
    ["par.search", "par.learners"],
    ["par.results"],
    ["par.paper"],
    ["par.runs"],  # the run policy: runs and each job's params from the config, paper targets included
]


def package(module: str) -> str:
    """The stage package of a par module: ``par.learners.ltg`` → ``par.learners``,
    ``par.planning`` → ``par.planning``; ``par`` itself → ``par``."""
    return ".".join(module.split(".")[:2])


def upward_imports(graph: dict[str, set[str]], layers: list[list[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs of different packages where the imported package is not
    in a strictly lower layer; a package missing from ``layers`` is an error."""
    layer = {p: i for i, names in enumerate(layers) for p in names}
    bad = []
    for a, targets in sorted(graph.items()):
        for b in sorted(targets):
            pa, pb = package(a), package(b)
            if pa != pb and layer[pb] >= layer[pa]:
                bad.append((a, b))
    return bad


def test_the_layer_checker_finds_upward_and_sibling_imports():
    graph = {"par.a.x": {"par.b.y", "par.a.z"}, "par.a.z": set(), "par.b.y": {"par.c"}, "par.c": set()}
    assert upward_imports(graph, [["par.c"], ["par.b"], ["par.a"]]) == []
    assert upward_imports(graph, [["par.a"], ["par.b"], ["par.c"]]) == [("par.a.x", "par.b.y"), ("par.b.y", "par.c")]
    assert upward_imports(graph, [["par.c"], ["par.a", "par.b"]]) == [("par.a.x", "par.b.y")]


def test_par_packages_import_only_lower_layers():
    graph = import_graph()
    packages = {package(m) for m in graph} - {"par"}
    assert packages == {p for names in LAYERS for p in names}, "a new package: give it a layer"
    assert upward_imports(graph, LAYERS) == []


def test_no_two_modules_share_a_file_name():
    names = {}
    for path in PAR.rglob("*.py"):
        if path.name != "__init__.py":
            names.setdefault(path.name, []).append(str(path.relative_to(PAR.parent)))
    assert {n: paths for n, paths in names.items() if len(paths) > 1} == {}


def test_package_init_files_are_empty():
    """Every package's ``__init__.py`` is empty: part of every module's code hash, so code in
    one would re-run every job; ``par/learners/__init__.py`` registers the learners."""
    inits = sorted(PAR.rglob("__init__.py"))
    assert len(inits) >= 10
    assert [str(p.relative_to(PAR.parent)) for p in inits
            if p.read_text().strip() and p != PAR / "learners" / "__init__.py"] == []
