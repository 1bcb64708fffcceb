"""The package's architecture, checked: layers import only downwards, no import circle (imports inside
functions and under TYPE_CHECKING included), no private name used across modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "mcm_gym"
#: Layer of each top-level part, lowest first; a module may import from its own layer or lower ones.
LAYERS = {"_io": 0, "core": 1, "instances": 2, "viz": 3, "env": 4, "search": 5, "learn": 6, "bench": 7,
          "cli": 8, "policy": 8, "": 8}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        parts = ("mcm_gym", *p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str, int]]:
    """(imported module, imported name, line) for every ``from mcm_gym... import`` and
    ``import mcm_gym...`` anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.append((full if full in MODULES else target, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names]
    return [(m, n, line) for m, n, line in found if m in MODULES]


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, p in MODULES.items():
        for target, _, _ in _imports(m, p):
            # a package's __init__ re-exporting its own modules, or a module importing its own package
            if target == m or target.startswith(m + ".") or m.startswith(target + "."):
                continue
            edges[m].add(target)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(edges[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(edges):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_every_part_has_a_layer() -> None:
    assert {_part(m) for m in MODULES} <= set(LAYERS)


def test_no_import_circle() -> None:
    cycle = _cycle(_edges())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_layers_import_only_downwards() -> None:
    bad = [f"{m} (layer {_part(m) or 'top'}) imports {t} (layer {_part(t) or 'top'})"
           for m, targets in _edges().items() for t in targets if LAYERS[_part(t)] > LAYERS[_part(m)]]
    assert not bad, "\n".join(bad)


def test_no_private_name_across_modules() -> None:
    bad = [f"{m}:{line} imports {n} from {t}" for m, p in MODULES.items() for t, n, line in _imports(m, p)
           if n.startswith("_") and not n.startswith("__") and t != m]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_its_job(module: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text(encoding="utf-8")))
    assert doc and len(doc.split()) >= 5, f"{module} has no module docstring naming its job"


def test_the_checks_catch_a_circle_and_an_upward_import() -> None:
    """The checks above can fail: a made-up circle and an upward arrow are found."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert LAYERS[_part("mcm_gym.learn.train")] > LAYERS[_part("mcm_gym.search.base")]
