"""Each stage's code version, derived from what its output depends on, so that no one has to remember to bump it:
the library source the stage runs and the settings it reads.

- Source: the modules a stage calls and everything they import inside `ahriuwu_core`, followed through every
  import statement (late ones included), each read as a syntax tree without its docstrings. A comment, a docstring
  or a reformat changes nothing; any change to code does.
- Settings: the part of the resolved project (preset, source) the stage reads.

Dagster marks a stage stale when its code version differs from the one its last materialization recorded, and its
downstream follows through the data versions. The definitions carry the deployment's versions (its environment);
a run whose launchpad overrides the project records its own (`run_tags`), so the UI compares what was computed
with what is deployed.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import ahriuwu_core

LIBRARY = "ahriuwu_core"
LIBRARY_DIR = Path(ahriuwu_core.__file__).parent
CODE_VERSION_TAG = "dagster/code_version"  # where Dagster records a materialization's code version

# The library modules each stage calls (pipeline/assets/; tests/test_code_versions.py checks the list against them);
# their imports are followed from there.
STAGE_MODULES = {
    "videos": ("ahriuwu_core.sources",),
    "frames": ("ahriuwu_core.data.frames",),
    "dataset_manifest": ("ahriuwu_core.data.catalog", "ahriuwu_core.data.manifest", "ahriuwu_core.data.split"),
    "tokenizer": ("ahriuwu_core.tokenizer.train", "ahriuwu_core.data.models"),
    "latents": ("ahriuwu_core.tokenizer.encode",),
    "dynamics": (
        "ahriuwu_core.dynamics.train",
        "ahriuwu_core.dynamics.checks",
        "ahriuwu_core.dynamics.load",
        "ahriuwu_core.tokenizer.encode",  # which latents it trains on
        "ahriuwu_core.data.models",
    ),
    "evaluation": (
        "ahriuwu_core.eval.run",
        "ahriuwu_core.eval.checks",
        "ahriuwu_core.demo.motion",
        "ahriuwu_core.data.models",
    ),
}


def module_file(name: str) -> Path | None:
    """The source file of a library module or package, or None for a name that is not one (an attribute)."""
    if name != LIBRARY and not name.startswith(LIBRARY + "."):
        return None
    path = LIBRARY_DIR.joinpath(*name.split(".")[1:])
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(name: str, tree: ast.AST) -> tuple[set[str], set[str]]:
    """(followed, parents): the library modules module `name`'s tree imports, relative imports resolved, and
    their parent packages. `from a import b` follows a.b where that is a module, else a (b is defined there, or
    re-exported). A parent package runs on import, so its own code counts, but its imports are followed only where
    something imports from it."""
    package = name if module_file(name).name == "__init__.py" else name.rpartition(".")[0]
    followed: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            followed.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                followed.add(child if module_file(child) is not None else base)
    followed = {n for n in followed if module_file(n) is not None}
    parents = {".".join(n.split(".")[:i]) for n in followed for i in range(1, n.count(".") + 1)}
    return followed, parents - followed


def _code_tree(path: Path) -> ast.AST:
    """The file's syntax tree without docstrings (they document; they do not run)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


@functools.cache
def _module(name: str, path: Path, stamp: tuple[int, int]) -> tuple[str, set[str], set[str]]:
    """(a hash of the module's code, the modules it imports, their parent packages): each file parsed once, and
    again only when it changes (`stamp`: its mtime and size)."""
    tree = _code_tree(path)
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest(), *_imported(name, tree)


def _module_code(name: str) -> tuple[str, set[str], set[str]]:
    path = module_file(name)
    if path is None:
        raise ValueError(f"{name!r} is not a module of {LIBRARY} ({LIBRARY_DIR})")
    stat = path.stat()
    return _module(name, path, (stat.st_mtime_ns, stat.st_size))


@functools.cache
def source_closure(modules: tuple[str, ...]) -> dict[str, str]:
    """Library module -> a hash of its code, for `modules` and every library module they import, transitively."""
    out: dict[str, str] = {}
    followed: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in followed:
            continue
        followed.add(name)
        out[name], imports, parents = _module_code(name)
        todo.extend(imports - followed)
        for parent in parents - out.keys():
            out[parent] = _module_code(parent)[0]
    return out


def digest(value) -> str:
    """A short hash of a value made of JSON types and dataclasses (configs)."""

    def as_json(x):
        return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else str(x)

    return hashlib.sha256(json.dumps(value, sort_keys=True, default=as_json).encode()).hexdigest()[:10]


def stage_settings(stage: str, project) -> dict:
    """What `stage` reads from the resolved project (pipeline.resources.ProjectResource)."""
    preset = project.preset_config()
    if stage == "videos":  # what a video's bytes depend on; the listing (URLs, folder) only names partitions
        kind = project.setting("source").partition(":")[0]
        return {
            "kind": kind,
            "max_height": project.setting("max_height"),
            "demo": preset.demo if kind == "demo" else None,
            "atari_seconds": project.setting("atari_seconds") if kind == "atari" else None,
        }
    if stage == "frames":
        return {"frames": preset.frames}
    if stage == "dataset_manifest":
        return {"source": project.setting("source"), "split": preset.split}
    if stage == "tokenizer":
        return {"tokenizer": preset.tokenizer_config()}
    if stage == "latents":
        return {}
    if stage == "dynamics":
        return {"dynamics": preset.dynamics}
    if stage == "evaluation":  # the demo is scored with its own motion estimate and camera track
        return {"evaluation": preset.evaluation, "demo_source": project.is_demo}
    raise KeyError(f"no stage {stage!r} (choose from {sorted(STAGE_MODULES)})")


def code_version(stage: str, project) -> str:
    """`<source digest>.<settings digest>`: the stage's code version for this project."""
    source = source_closure(STAGE_MODULES[stage])
    return f"{digest(sorted(source.items()))}.{digest(stage_settings(stage, project))}"


def run_tags(stage: str, project) -> dict[str, str]:
    """Tags for a stage's MaterializeResult. Under a launchpad override of the project, the code version of the
    run's own project, which Dagster then records in place of the definition's; otherwise none."""
    return {CODE_VERSION_TAG: code_version(stage, project)} if project.overridden() else {}
