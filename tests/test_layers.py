"""The calibrator's imports run one way: cli -> {search, eval, bench, demo} -> {models, tasks} -> erase.

Every module of calibrate/erase_calibrate is parsed (not imported), every import in it, at the
top or inside a function, is an edge. The graph must have no cycle, and no module may import a layer
above its own or a sibling package of its own layer. The old names (model_loading, answering,
calibration, benchmarks) are gone and nothing imports them. No module outside the demo's own
registrations compares a value with "demo".
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "erase_calibrate"
ROOT = Path(__file__).resolve().parents[1] / "calibrate" / PACKAGE

# Component (the first name under erase_calibrate) -> layer. Support modules sit with the runtime.
LAYERS = {
    "": 0, "interrupts": 0, "plotting": 0, "overlay": 0, "data_samples": 0,
    "models": 1, "tasks": 1,
    "search": 2, "eval": 2, "bench": 2, "demo": 2,
    "cli": 3,
}
# Old names of the calibrator, replaced by models/ and tasks/: they must not come back.
REMOVED = {"model_loading", "answering", "calibration", "benchmarks", "model_identity"}
TREES = [ROOT.parents[1] / d for d in ("calibrate", "tests", "scripts")]
DEMO_REGISTRATIONS = {f"{PACKAGE}.models.demo", f"{PACKAGE}.tasks.sources.demo"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The calibrator modules NAME imports (a name imported from a package counts as its submodule when it is one)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known and "." in t:
                t = t.rsplit(".", 1)[0]  # `import a.b.c` of a package: the deepest module that exists
            if t in known and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(name, path, known) for name, path in found.items()}


def component(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                found.append(sorted(scc))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def violations(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in sorted(g.items()):
        a = component(src)
        for dst in sorted(targets):
            b = component(dst)
            if a == b:
                continue
            if a not in LAYERS or b not in LAYERS:
                bad.append(f"{src} -> {dst}: {a or b!r} has no layer; add it to LAYERS")
            elif LAYERS[b] > LAYERS[a]:
                bad.append(f"{src} -> {dst}: imports upward (layer {LAYERS[a]} -> {LAYERS[b]})")
            elif LAYERS[b] == LAYERS[a]:
                bad.append(f"{src} -> {dst}: imports a sibling of layer {LAYERS[a]}")
    return bad


def test_the_checker_finds_cycles_and_wrong_directions():
    m = f"{PACKAGE}.models.registry"
    t = f"{PACKAGE}.tasks.registry"
    s = f"{PACKAGE}.search.run"
    assert cycles({m: {t}, t: {m}}) == [sorted([m, t])]
    assert cycles({s: {m, t}, m: set(), t: set()}) == []
    assert violations({s: {m}, m: set()}) == []
    assert any("upward" in v for v in violations({m: {s}, s: set()}))
    assert any("sibling" in v for v in violations({m: {t}, t: set()}))
    e = f"{PACKAGE}.eval.run"
    assert any("sibling" in v for v in violations({e: {s}, s: set()}))  # eval sits beside search, bench, demo
    assert any("upward" in v for v in violations({t: {e}, e: set()}))


def test_the_parser_sees_relative_lazy_and_package_imports():
    g = graph()
    run = g[f"{PACKAGE}.search.run"]
    assert f"{PACKAGE}.models" in run and f"{PACKAGE}.tasks" in run  # `from .. import models, tasks`
    assert f"{PACKAGE}.tasks.benchmarks.prompts" in g[f"{PACKAGE}.tasks.sources.chartqa"]  # a submodule by name
    assert f"{PACKAGE}.bench.measure" in g[f"{PACKAGE}.cli.demo_cmd"]  # imported inside a function
    assert {f"{PACKAGE}.models", f"{PACKAGE}.tasks"} <= g[f"{PACKAGE}.eval.sources"]  # eval's one way to models and items


def test_the_calibrator_has_no_import_cycle():
    assert cycles(graph()) == []


def test_imports_run_one_way():
    assert violations(graph()) == []


def test_every_component_has_a_layer():
    unknown = {component(n) for n in modules()} - set(LAYERS)
    assert not unknown, f"packages without a layer: {sorted(unknown)}"
    assert LAYERS["eval"] == LAYERS["search"] == LAYERS["bench"] == LAYERS["demo"] == 2


def test_the_old_names_are_gone_and_nothing_imports_them():
    assert not [n for n in REMOVED if (ROOT / n).is_dir() or (ROOT / f"{n}.py").exists()]
    old = {f"{PACKAGE}.{n}" for n in REMOVED}
    found = []
    for tree in TREES:
        for path in sorted(tree.rglob("*.py")):
            if ".venv" in path.parts:
                continue
            in_package = ROOT in path.parents
            name = module_name(path) if in_package else ""
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    target = node.module or ""
                    if node.level and in_package:  # relative: resolve against the module's package
                        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                        target = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
                    targets = [target, *(f"{target}.{a.name}" for a in node.names)]
                else:
                    continue
                if any(t in old or any(t.startswith(o + ".") for o in old) for t in targets):
                    found.append(f"{path}:{node.lineno}")
    assert not found, f"imports of removed modules: {found}"


@pytest.mark.parametrize("name", sorted(set(modules()) - DEMO_REGISTRATIONS))
def test_no_demo_special_case_outside_its_registrations(name):
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
    aliases = {  # module constants that spell "demo"
        t.id for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        and node.value.value == "demo" for t in node.targets if isinstance(t, ast.Name)
    }

    def is_demo(v: ast.AST) -> bool:
        return (isinstance(v, ast.Constant) and v.value == "demo") or (isinstance(v, ast.Name) and v.id in aliases)

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            assert not any(is_demo(v) for v in [node.left, *node.comparators]), (
                f"{name}:{node.lineno} compares with 'demo'; make it a property of the demo's registration"
            )
