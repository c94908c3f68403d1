"""Structure rules, checked on the source: the library never imports dagster or its own testing support, its
module-level imports form no cycle, presets live in one registry, and the code location uses only Dagster's
public API."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "ahriuwu_core"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in LIB.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return out


def _top_level_imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Library modules imported at module level (imports inside functions are deliberate late imports)."""
    package = name if (LIB / Path(*name.split(".")[1:]) / "__init__.py").exists() else name.rpartition(".")[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
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
            assert not any(m.startswith("ahriuwu_core.testing") or (isinstance(node, ast.ImportFrom) and node.level
                           and "testing" in (node.module or "")) for m in mods), name


def test_no_import_cycles_in_the_library():
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


DATA_ROOT_NAMES = {"videos", "frames", "latents", "tokenizer", "dynamics", "reports", "catalog", "demo_source",
                   "manifest.json", "removed.txt", "runs", "tokenizer.pt", "dynamics.pt"}


def test_only_the_layout_module_spells_paths_under_the_data_root():
    """No `something / "frames"` (or joinpath) outside ahriuwu_core/layout.py: every path under the data root
    comes from `DataLayout`. A run folder's own files (`out_dir / "dynamics.pt"`) are the trainer's business."""
    offenders = []
    for path in [*LIB.rglob("*.py"), *(ROOT / "pipeline").rglob("*.py")]:
        if path.name == "layout.py" or "testing" in path.parts:
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
                if isinstance(p, ast.JoinedStr) and any(isinstance(v, ast.Constant) and ".zarr" in str(v.value)
                                                        for v in p.values):
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
    offenders = {str(p.relative_to(ROOT)): bad for p in (ROOT / "pipeline").rglob("*.py")
                 if p.name != "launcher.py" and (bad := _private_dagster_imports(ast.parse(p.read_text(), str(p))))}
    assert not offenders, offenders


def test_private_import_detector_sees_them():
    tree = ast.parse("import dagster._core.x\nfrom dagster._time import now\nfrom dagster import _check\n"
                     "from dagster import asset\nimport dagster_pipes\n")
    assert _private_dagster_imports(tree) == ["dagster._core.x", "dagster._time", "dagster._check"]


def test_only_the_files_module_renames():
    """Write-then-rename has one owner, ahriuwu_core/files.py: no os.replace / os.rename / shutil.move /
    Path.rename / Path.replace(target) anywhere else in the library or the code location."""
    offenders = []
    for path in [*LIB.rglob("*.py"), *(ROOT / "pipeline").rglob("*.py")]:
        if path == LIB / "files.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            attr, owner = node.func.attr, getattr(node.func.value, "id", "")
            renames = (owner in ("os", "shutil") and attr in ("replace", "rename", "renames", "move")
                       or attr == "rename"
                       or attr == "replace" and len(node.args) == 1 and not node.keywords and owner != "dataclasses")
            if renames:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{attr}(...)")
    assert not offenders, offenders
