"""The package's import graph: no cycles between seekdeploy modules, and layers imported downwards.

Read from the source with `ast` (nothing is imported), so an import inside a function counts as
much as one at the top of a file: it closes the same cycle the first time it runs. Imports under
`if TYPE_CHECKING:` never run; they are left out of the cycle check but still have to respect the
layer order (a lower layer should not need a higher layer's types either).

The layer contract, top to bottom (a module may import its own layer and any layer below it):

    cli -> pipeline -> stages (train, export/slice, plan, measure, report) -> nn, runtime,
    backends, profiles, data -> errors, _io, layout

Artifact names (`manifest.json`, `model.onnx`, ...) are spelled in `seekdeploy/layout.py` only,
and the role names ("base", "motivated") in `seekdeploy/roles.py` only; every other module reads
them from there (the standalone device agents excepted).

KNOWN_CYCLES, KNOWN_LAYER_VIOLATIONS, KNOWN_NAME_LITERALS and KNOWN_ROLE_LITERALS are allow-lists
of exceptions; they may only shrink: a new cycle, upward import or stray name fails, and so does a
listed one that is gone.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seekdeploy"

# Layer of each top-level module or subpackage of seekdeploy (higher imports lower, never upwards).
LAYERS: dict[str, int] = {
    # 5: the command line
    "cli": 5, "__main__": 5,
    # 4: the flow that chains the stages
    "pipeline": 4,
    # 3: the stages, each the library behind one command
    "train": 3, "export": 3, "plan": 3, "report": 3, "measure": 3, "remote": 3,
    "doctor": 3,
    # 2: what the stages are built from
    "nn": 2, "runtime": 2, "backends": 2, "profiles": 2, "data": 2,
    # 1: the floor: errors, file helpers, artifact names
    "errors": 1, "_io": 1, "layout": 1, "roles": 1, "__init__": 1,
}
LAYER_NAMES = {5: "cli", 4: "pipeline", 3: "stages", 2: "building blocks", 1: "errors/io/layout/roles"}

# Cycles still present (each the set of modules of one strongly connected component).
KNOWN_CYCLES: list[frozenset[str]] = []

# (importing module, imported module) pairs that import upwards, still present.
KNOWN_LAYER_VIOLATIONS: set[tuple[str, str]] = set()

# Modules that may spell artifact names themselves: the device agents, and the TensorRT core
# shipped beside its agent, run without seekdeploy.
STANDALONE = {"seekdeploy.remote.agent", "seekdeploy.backends.agent_onnxruntime",
              "seekdeploy.backends.agent_openvino", "seekdeploy.backends.agent_tensorrt",
              "seekdeploy.backends._tensorrt_core"}

# (module, artifact name) still spelled outside layout.py (measuring and TensorRT code, R2).
KNOWN_NAME_LITERALS: set[tuple[str, str]] = set()

# The one module that spells the role names; every other reads them from `Role`.
ROLE_HOME = "seekdeploy.roles"

# (module, role name) still spelled outside roles.py: cascade modules being rewritten (issue 28 item 2).
KNOWN_ROLE_LITERALS: set[tuple[str, str]] = {
    ("seekdeploy.report.render_html", "base"), ("seekdeploy.report.render_html", "motivated"),
}


@dataclass(frozen=True)
class Edge:
    """One import of a seekdeploy module by another, where it is written."""

    source: str
    target: str
    path: str  # relative to the folder that holds the package
    line: int
    type_only: bool

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imported_names(node: ast.AST, package: str) -> Iterator[str]:
    # Every dotted name an import statement may load: `from a.b import c` may load a.b.c.
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        yield module
        yield from (f"{module}.{alias.name}" for alias in node.names)


def collect_edges(package: Path = PACKAGE) -> tuple[set[str], list[Edge]]:
    """All seekdeploy modules and every import between two of them (inside functions too)."""
    files = {module_name(p, package): p for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    edges = []
    for source, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package_name = source if path.name == "__init__.py" else source.rpartition(".")[0]
        type_only = _type_checking_lines(tree)
        for node in ast.walk(tree):
            targets = {name for name in _imported_names(node, package_name) if name in files}
            # `from pkg import sub` loads pkg and pkg.sub; name the most specific module only.
            targets = {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
            where = str(path.relative_to(package.parent))
            edges += [Edge(source, t, where, node.lineno, node.lineno in type_only)
                      for t in sorted(targets) if t != source]
    return set(files), edges


def find_cycles(modules: set[str], edges: list[Edge]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for edge in edges:
        graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(frozenset(component))
    return components


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1] if len(parts) > 1 else "__init__")


@pytest.fixture(scope="module")
def graph() -> tuple[set[str], list[Edge]]:
    return collect_edges()


def _describe_cycle(cycle: frozenset[str], edges: list[Edge]) -> str:
    inside = [e for e in edges if e.source in cycle and e.target in cycle and not e.type_only]
    return "\n".join(f"  {e.where()}: {e.source} imports {e.target}" for e in inside)


def test_no_import_cycles_beyond_the_known_list(graph) -> None:
    modules, edges = graph
    runtime_edges = [e for e in edges if not e.type_only]
    cycles = find_cycles(modules, runtime_edges)
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    gone = [c for c in KNOWN_CYCLES if c not in cycles]
    message = "".join(f"new import cycle {sorted(c)}:\n{_describe_cycle(c, runtime_edges)}\n" for c in new)
    message += "".join(f"KNOWN_CYCLES lists {sorted(c)}, which is gone (or changed): update the list\n"
                       for c in gone)
    assert not message, message


def test_layers_are_imported_downwards_only(graph) -> None:
    _, edges = graph
    unplaced = sorted({e.source for e in edges if layer_of(e.source) is None}
                      | {e.target for e in edges if layer_of(e.target) is None})
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"
    upward = [e for e in edges if layer_of(e.target) > layer_of(e.source)]
    found = {(e.source, e.target) for e in upward}
    new = [e for e in upward if (e.source, e.target) not in KNOWN_LAYER_VIOLATIONS]
    message = "".join(f"{e.where()}: {e.source} ({LAYER_NAMES[layer_of(e.source)]}) imports "
                      f"{e.target} ({LAYER_NAMES[layer_of(e.target)]}), a higher layer\n" for e in new)
    message += "".join(f"KNOWN_LAYER_VIOLATIONS lists {pair}, which is gone: remove it from the list\n"
                       for pair in sorted(KNOWN_LAYER_VIOLATIONS - found))
    assert not message, message


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    # A cycle closed inside a function, and a low layer importing the CLI, in a package of three files.
    package = tmp_path / "seekdeploy"
    (package / "cli").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli" / "__init__.py").write_text("")
    (package / "_io.py").write_text("def f():\n    from seekdeploy.errors import E\n")
    (package / "errors.py").write_text("from seekdeploy import _io\nfrom seekdeploy.cli import main\n")
    modules, edges = collect_edges(package)
    assert find_cycles(modules, edges) == [frozenset({"seekdeploy._io", "seekdeploy.errors"})]
    inner = next(e for e in edges if e.source == "seekdeploy._io")
    assert (inner.target, inner.line) == ("seekdeploy.errors", 2)
    upward = [(e.source, e.target) for e in edges if layer_of(e.target) > layer_of(e.source)]
    assert upward == [("seekdeploy.errors", "seekdeploy.cli")]


def artifact_names() -> set[str]:
    """Every file name, suffix, pattern and document kind layout.py defines, inside its tuples and
    tables too (not the generic manifest keys, nor the folder names `runs`, `exports`, `cascade`
    and `profiles`, which are ordinary words in other documents and commands too)."""
    from seekdeploy import layout

    keys = {layout.FINAL, layout.CHECKPOINT_SHA256, layout.RUNS_DIR, layout.EXPORTS_DIR, layout.CASCADE_DIR,
            layout.PROFILES_DIR}
    values: set[str] = set()
    for name, value in vars(layout).items():
        if name.isupper():
            items = value.values() if isinstance(value, dict) else value if isinstance(value, tuple) else [value]
            values |= {item for item in items if isinstance(item, str)}
    return values - keys


def name_literals(package: Path = PACKAGE, names: set[str] | None = None,
                  home: str = "seekdeploy.layout") -> list[tuple[str, str, str]]:
    """(module, name, file:line) of every string constant in the package equal to one of `names`
    (default: the artifact names), outside their `home` module and the standalone agents."""
    names = artifact_names() if names is None else names
    found = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package)
        if "__pycache__" in path.parts or module in STANDALONE or module == home:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append((module, node.value, f"{path.relative_to(package.parent)}:{node.lineno}"))
    return found


def test_artifact_names_are_spelled_only_in_layout() -> None:
    found = name_literals()
    new = [f"{where}: {name!r} (use seekdeploy.layout)" for module, name, where in found
           if (module, name) not in KNOWN_NAME_LITERALS]
    gone = sorted(KNOWN_NAME_LITERALS - {(module, name) for module, name, _ in found})
    message = "\n".join(new + [f"KNOWN_NAME_LITERALS lists {pair}, which is gone: remove it" for pair in gone])
    assert not message, message
    assert {"model.onnx", "manifest.json", "report.html", "build_engine.sh", ".engine",
            "seekdeploy.profile"} <= artifact_names()


def test_the_engine_pattern_finds_the_engines_the_device_names() -> None:
    # The TensorRT core (shipped to devices) spells engine names itself; layout's pattern must match.
    from fnmatch import fnmatch

    from seekdeploy import layout
    from seekdeploy.backends._tensorrt_core import engine_filename

    assert fnmatch(engine_filename("jetson-orin-nano", "8.6", "fp16"), layout.engine_glob("jetson-orin-nano", "fp16"))
    assert not fnmatch(engine_filename("jetson-orin-nano", "8.6", "fp32"), layout.engine_glob("jetson-orin-nano", "fp16"))


def _check_literals(found: list[tuple[str, str, str]], known: set[tuple[str, str]], home: str,
                    known_name: str) -> None:
    new = [f"{where}: {name!r} (use {home})" for module, name, where in found if (module, name) not in known]
    gone = sorted(known - {(module, name) for module, name, _ in found})
    message = "\n".join(new + [f"{known_name} lists {pair}, which is gone: remove it" for pair in gone])
    assert not message, message


def test_role_names_are_spelled_only_in_roles() -> None:
    from seekdeploy.roles import ROLE_NAMES

    _check_literals(name_literals(names=set(ROLE_NAMES), home=ROLE_HOME), KNOWN_ROLE_LITERALS,
                    ROLE_HOME, "KNOWN_ROLE_LITERALS")


def test_the_literal_check_sees_a_role_name(tmp_path: Path) -> None:
    package = tmp_path / "seekdeploy"
    package.mkdir()
    (package / "roles.py").write_text('BASE = "base"\n')
    (package / "stage.py").write_text('x = {"base": 1}\ny = f"the base {x}"\n')
    found = name_literals(package, names={"base"}, home=ROLE_HOME)
    assert [(module, name) for module, name, _ in found] == [("seekdeploy.stage", "base")]


def layout_aliases(package: Path = PACKAGE) -> list[str]:
    """Module-level names bound to a layout name under another name (`X = layout.Y`,
    `from seekdeploy.layout import Y as X`): every module reads `layout.Y` itself."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts or module_name(path, package) == "seekdeploy.layout":
            continue
        where = path.relative_to(package.parent)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute)
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "layout"):
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom) and node.module == "seekdeploy.layout":
                found += [f"{where}:{node.lineno}: {a.name} as {a.asname}" for a in node.names
                          if a.asname and a.asname != a.name]
    return found


def test_no_module_renames_a_layout_name() -> None:
    found = layout_aliases()
    assert not found, "use the layout name itself:\n" + "\n".join(found)
