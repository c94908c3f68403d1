"""Structure rules, checked on the source: the library never imports dagster or its own testing support, its
module-level imports form no cycle, the demo game is reached only as a source, modules stay small, presets live
in one registry, and the code location uses only Dagster's public API."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "ahriuwu_core"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in LIB.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return out


def _package_of(name: str) -> str:
    return name if (LIB / Path(*name.split(".")[1:]) / "__init__.py").exists() else name.rpartition(".")[0]


def _imported(name: str, node: ast.AST) -> set[str]:
    """Absolute names an import statement in module `name` refers to: the module, and for `from m import x` also
    `m.x` (x may be a submodule). Relative imports are resolved against the module's package."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:
        package = _package_of(name)
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    return {base} | {f"{base}.{a.name}" for a in node.names}


def _top_level_imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Library modules imported at module level (imports inside functions are deliberate late imports)."""
    found = set().union(*(_imported(name, node) for node in tree.body))
    return {m for m in found if m in known and m != name}


def _all_imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Library modules imported anywhere in the module: at module level or inside functions and classes."""
    found = set().union(*(_imported(name, node) for node in ast.walk(tree)))
    return {m for m in found if m in known and m != name}


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
    """The graph of ahriuwu_core modules, an edge per module-level `import` / `from ... import` that resolves to
    a library module (relative ones included), has no cycle. Imports inside functions are not edges: they run
    after every module has loaded."""
    modules = _modules()
    graph = {n: _top_level_imports(n, t, set(modules)) for n, t in modules.items()}
    state: dict[str, int] = {}

    def visit(n, path):
        state[n] = 1
        for m in graph[n]:
            if m.startswith(n + "."):  # a package importing its own submodules is not a cycle
                continue
            assert state.get(m) != 1, "import cycle: " + " -> ".join(path + [m])
            if m not in state:
                visit(m, path + [m])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [n])


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


MAX_MODULE_LINES = 450


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
