"""Structure rules, checked on the source: the library never imports dagster or its own testing support, its
imports (late ones included) form no cycle, the demo game is reached only as a source, modules stay small, presets
live in one registry that only the command lines import, and the code location uses only Dagster's public API."""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "ahriuwu_core"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in LIB.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return out


def _is_package(name: str) -> bool:
    return (LIB / Path(*name.split(".")[1:]) / "__init__.py").exists()


def _package_of(name: str) -> str:
    return name if _is_package(name) else name.rpartition(".")[0]


def _with_parents(name: str) -> set[str]:
    """`name` and every package above it: what Python runs to import it, outermost first."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def _import_edges(name: str, node: ast.AST, known: set[str]) -> set[str]:
    """The library modules an import statement in module `name` runs or reads a name from, exactly as Python does.

    `import a.b.c` and `from a.b.c import x` run a, a.b and a.b.c (a package's __init__ before its modules), so
    importing any module of a sibling package runs that package's __init__ and is an edge to it. `from p import x`
    also runs p.x when that is a module; otherwise x is read from p's __init__, an edge to p. The packages that
    contain `name` are already initialising when it runs: importing them adds no edge unless a name is read from
    one (`from . import sibling` is an edge to the sibling; `from . import NAME` an edge to the package)."""
    already = _with_parents(name)
    edges: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            edges |= _with_parents(alias.name) - already
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = _package_of(name).split(".")
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        edges |= _with_parents(base) - already
        for alias in node.names:
            edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in edges if m in known and m != name}


def _top_level_imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Library modules that module `name` imports when it is imported (module-level statements only)."""
    return set().union(*(_import_edges(name, node, known) for node in tree.body))


def _all_imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Library modules imported anywhere in the module: at module level or inside functions and classes."""
    return set().union(*(_import_edges(name, node, known) for node in ast.walk(tree)))


def _import_graph(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Module -> the library modules it imports anywhere (late imports inside functions included)."""
    known = set(modules)
    return {name: _all_imports(name, tree, known) for name, tree in modules.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in the graph as its path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return None


def test_the_library_never_imports_dagster():
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.split(".")[0] in ("dagster", "dagster_pipes") for m in mods), name


def test_the_library_never_imports_its_testing_support():
    for name, tree in _modules().items():
        if name.startswith("ahriuwu_core.testing"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mods = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            assert not any(
                m.startswith("ahriuwu_core.testing")
                or (isinstance(node, ast.ImportFrom) and node.level and "testing" in (node.module or ""))
                for m in mods
            ), name


def test_no_import_cycles_in_the_library():
    """The graph of ahriuwu_core modules, an edge per `import` / `from ... import` anywhere in a module (inside
    functions too) that reaches a library module (`_import_edges`), has no cycle: components never import what is
    built on them, even late. Presets import components; the command lines that need a preset sit above both."""
    cycle = _find_cycle(_import_graph(_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("component", ["ahriuwu_core.tokenizer.train", "ahriuwu_core.dynamics.train_config"])
def test_cycle_detector_sees_a_late_import_of_the_presets(component):
    """A trainer that looked its preset up itself, with a late import inside a function, closes the cycle
    presets -> component -> presets."""
    modules = _modules()
    modules[component].body.extend(ast.parse("def main():\n    from ..presets import PRESETS\n").body)
    cycle = _find_cycle(_import_graph(modules))
    assert cycle is not None and {"ahriuwu_core.presets", component} <= set(cycle), cycle


# Presets import components, never the reverse: only what sits above the registry (the command lines, the test
# support) looks a preset up.
PRESET_USERS = ("ahriuwu_core.cli", "ahriuwu_core.testing")


def test_only_the_command_lines_import_the_presets():
    modules = _modules()
    offenders = sorted(
        name
        for name, tree in modules.items()
        if not name.startswith(PRESET_USERS) and "ahriuwu_core.presets" in _all_imports(name, tree, set(modules))
    )
    assert not offenders, offenders


def test_import_edges_are_exact():
    known = {
        "ahriuwu_core",
        "ahriuwu_core.presets",
        "ahriuwu_core.tokenizer",
        "ahriuwu_core.tokenizer.cnn",
        "ahriuwu_core.tokenizer.encode",
        "ahriuwu_core.data",
        "ahriuwu_core.data.frames",
    }

    def edges(name: str, source: str) -> set[str]:
        return _all_imports(name, ast.parse(source), known)

    # a sibling package's module runs that package's __init__ first
    assert edges("ahriuwu_core.presets", "from ahriuwu_core.tokenizer.cnn import CNNTokenizer") == {
        "ahriuwu_core.tokenizer",
        "ahriuwu_core.tokenizer.cnn",
    }
    assert edges("ahriuwu_core.presets", "import ahriuwu_core.data.frames") == {
        "ahriuwu_core.data",
        "ahriuwu_core.data.frames",
    }
    # inside its own package: a sibling module is an edge to it alone, a name from __init__ an edge to __init__
    assert edges("ahriuwu_core.tokenizer.encode", "from . import cnn") == {"ahriuwu_core.tokenizer.cnn"}
    assert edges("ahriuwu_core.tokenizer.encode", "from .cnn import CNNTokenizer") == {"ahriuwu_core.tokenizer.cnn"}
    assert edges("ahriuwu_core.tokenizer.encode", "from . import load_tokenizer") == {"ahriuwu_core.tokenizer"}
    # a package's __init__ importing its own modules; late imports count
    assert edges("ahriuwu_core.tokenizer", "from .cnn import CNNTokenizer") == {"ahriuwu_core.tokenizer.cnn"}
    assert edges("ahriuwu_core.tokenizer.cnn", "def f():\n    from ..presets import PRESETS\n") == {
        "ahriuwu_core.presets"
    }
    assert edges("ahriuwu_core.data.frames", "from .. import presets") == {"ahriuwu_core.presets"}


def test_cycle_detector_reports_the_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_library_module_imports():
    """Every library module imports (`__main__` modules are scripts): a cycle through module-level imports
    fails here with a partially initialised module."""
    for name in sorted(n for n in _modules() if not n.endswith(".__main__")):
        importlib.import_module(name)


def test_cycle_detector_sees_relative_imports():
    tree = ast.parse(
        "from . import rollouts\nfrom .config import EvalConfig\nfrom ..images.motion import estimate_shift\n"
    )
    known = {"ahriuwu_core.eval.rollouts", "ahriuwu_core.eval.config", "ahriuwu_core.images.motion"}
    assert _top_level_imports("ahriuwu_core.eval.run", tree, known) == known


# The demo game is one source among others: only the module that offers it as a source and the preset registry
# (which picks its settings) import it; the evaluation gets the demo's motion estimate passed in by its caller.
DEMO_USERS = {"ahriuwu_core.sources.listing", "ahriuwu_core.sources.fetch", "ahriuwu_core.presets"}


def test_only_the_sources_and_presets_import_the_demo_game():
    modules = _modules()
    offenders = {}
    for name, tree in modules.items():
        if name.startswith(("ahriuwu_core.demo", "ahriuwu_core.testing")) or name in DEMO_USERS:
            continue
        demo = {
            m
            for m in _all_imports(name, tree, set(modules))
            if m == "ahriuwu_core.demo" or m.startswith("ahriuwu_core.demo.")
        }
        if demo:
            offenders[name] = sorted(demo)
    assert not offenders, offenders


MAX_MODULE_LINES = 400


def test_demo_import_detector_sees_late_and_relative_imports():
    tree = ast.parse(
        "def f():\n    from ahriuwu_core.demo.motion import estimate_scroll\ndef g():\n    from .demo import video\n"
    )
    known = {"ahriuwu_core.demo", "ahriuwu_core.demo.motion", "ahriuwu_core.demo.video"}
    assert _all_imports("ahriuwu_core.presets", tree, known) == known


def test_library_modules_stay_small():
    too_long = {}
    for path in LIB.rglob("*.py"):
        rel = str(path.relative_to(ROOT))
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            too_long[rel] = lines
    assert not too_long, too_long


def test_one_preset_registry():
    """Training configs are built at module level only in ahriuwu_core/presets.py."""
    for name, tree in _modules().items():
        if name == "ahriuwu_core.presets":
            continue
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                calls = [c.func for c in ast.walk(node.value) if isinstance(c, ast.Call)]
                names = {getattr(f, "id", getattr(f, "attr", "")) for f in calls}
                assert not names & {"TokenizerTrainConfig", "DynamicsTrainConfig", "Preset"}, name


DATA_ROOT_NAMES = {
    "videos",
    "frames",
    "latents",
    "tokenizer",
    "dynamics",
    "reports",
    "catalog",
    "demo_source",
    "atari_source",
    "manifest.json",
    "removed.txt",
    "runs",
    "tokenizer.pt",
    "dynamics.pt",
}


def test_only_the_layout_module_spells_paths_under_the_data_root():
    """No `something / "frames"` (or joinpath) outside ahriuwu_core/data/layout.py: every path under the data root
    comes from `DataLayout`. A run folder's own files (`out_dir / "dynamics.pt"`) are the trainer's business."""
    offenders = []
    for path in [*LIB.rglob("*.py"), *(ROOT / "pipeline").rglob("*.py")]:
        if path == LIB / "data" / "layout.py" or "testing" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            parts = []
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                parts = [node.right]
                left = node.left  # `x / "a" / "b"`: the inner join's right side is reached by the walk itself
                if isinstance(left, ast.Name) and left.id in ("out_dir", "run_dir", "tmp", "out"):
                    continue  # a run or output folder's own files
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "joinpath":
                parts = node.args
            for p in parts:
                if isinstance(p, ast.Constant) and p.value in DATA_ROOT_NAMES:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {p.value!r}")
                if isinstance(p, ast.JoinedStr) and any(
                    isinstance(v, ast.Constant) and ".zarr" in str(v.value) for v in p.values
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} <id>.zarr")
    assert not offenders, offenders


def _private_dagster_imports(tree: ast.Module) -> list[str]:
    """`dagster._x` modules, or `_x` names from a dagster module, that `tree` imports."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0].startswith("dagster") and "._" in a.name]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0].startswith("dagster"):
            if "._" in node.module:
                found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_the_code_location_imports_no_private_dagster_module():
    # The run launcher plugs into the instance, not the code location; its health check's types are private.
    offenders = {
        str(p.relative_to(ROOT)): bad
        for p in (ROOT / "pipeline").rglob("*.py")
        if p.name != "launcher.py" and (bad := _private_dagster_imports(ast.parse(p.read_text(), str(p))))
    }
    assert not offenders, offenders


def test_private_import_detector_sees_them():
    tree = ast.parse(
        "import dagster._core.x\nfrom dagster._time import now\nfrom dagster import _check\n"
        "from dagster import asset\nimport dagster_pipes\n"
    )
    assert _private_dagster_imports(tree) == ["dagster._core.x", "dagster._time", "dagster._check"]


def test_only_the_files_module_renames():
    """Write-then-rename has one owner, ahriuwu_core/data/files.py: no os.replace / os.rename / shutil.move /
    Path.rename / Path.replace(target) anywhere else in the library or the code location."""
    offenders = []
    for path in [*LIB.rglob("*.py"), *(ROOT / "pipeline").rglob("*.py")]:
        if path == LIB / "data" / "files.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            attr, owner = node.func.attr, getattr(node.func.value, "id", "")
            renames = (
                owner in ("os", "shutil")
                and attr in ("replace", "rename", "renames", "move")
                or attr == "rename"
                or attr == "replace"
                and len(node.args) == 1
                and not node.keywords
                and owner != "dataclasses"
            )
            if renames:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{attr}(...)")
    assert not offenders, offenders


def test_make_test_keeps_each_file_on_one_worker(request):
    """`make test`'s workers take one file (or the demo model's tests) at a time, so module fixtures are built
    once: conftest marks the group, and xdist, where it runs, appends it to the node id. With pytest 9.2 it stopped
    doing so without a word, and every module fixture was built on both workers."""
    groups = [m.args[0] for m in request.node.iter_markers("xdist_group")]
    assert groups == ["tests/test_structure.py"]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        assert request.node.nodeid.endswith("@tests/test_structure.py"), request.node.nodeid
