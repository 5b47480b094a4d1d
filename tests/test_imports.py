"""The import graph of par/ has no cycles (issue 13): every import, at module level or
inside a function, of one par module by another."""
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
    assert "par.streams.spec" in graph and "par.streams.tasks" in graph["par.streams.spec"]
    assert cycles(graph) == []
