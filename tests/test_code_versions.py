"""Derived code versions (pipeline/code_versions.py): each stage's follows the library modules it runs, and the
settings it reads, and nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline import code_versions as cv
from pipeline.resources import ProjectResource


def test_each_stage_hashes_the_modules_it_imports_and_not_the_others():
    closure = {stage: set(cv.source_closure(modules)) for stage, modules in cv.STAGE_MODULES.items()}
    # Relative imports are followed (tokenizer/encode.py: `from .build import ...`), and parent packages count.
    assert {"ahriuwu_core.tokenizer.build", "ahriuwu_core.tokenizer", "ahriuwu_core"} <= closure["latents"]
    # Importing a submodule does not pull in its package's other modules: encoding is not training.
    assert "ahriuwu_core.tokenizer.train" in closure["tokenizer"]
    assert "ahriuwu_core.tokenizer.train" not in closure["latents"]
    assert "ahriuwu_core.dynamics.objective" in closure["dynamics"]
    assert not any(m.startswith("ahriuwu_core.dynamics") for m in closure["frames"] | closure["tokenizer"])
    assert "ahriuwu_core.dynamics.sampler" in closure["evaluation"]  # the rollouts, through eval/run.py
    assert not any(m.startswith(("ahriuwu_core.play", "ahriuwu_core.cli")) for c in closure.values() for m in c)
    assert "ahriuwu_core.presets" not in set().union(*closure.values())  # presets reach a stage as settings


def test_docstrings_and_comments_do_not_count_but_code_does(tmp_path, monkeypatch):
    package = tmp_path / "ahriuwu_core"
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = package / "thing.py"
    monkeypatch.setattr(cv, "LIBRARY_DIR", package)

    def version(text: str) -> str:
        module.write_text(text)
        cv.source_closure.cache_clear()
        return cv.digest(sorted(cv.source_closure(("ahriuwu_core.thing",)).items()))

    base = version('"""What it is."""\n\n\ndef f(x):\n    """Twice x."""\n    return 2 * x\n')
    assert version('"""What it is, said again."""\n# why\ndef f(x):\n    """Twice."""\n    return 2 * x  # c\n') == base
    assert version('"""What it is."""\n\n\ndef f(x):\n    """Twice x."""\n    return 3 * x\n') != base
    assert version('"""What it is."""\n\n\ndef f(x):\n    """Twice x."""\n    return x * 2\n') != base
    cv.source_closure.cache_clear()
    with pytest.raises(ValueError, match="ahriuwu_core.missing"):
        cv.source_closure(("ahriuwu_core.missing",))
    cv.source_closure.cache_clear()


def test_settings_reach_exactly_the_stages_that_read_them(monkeypatch):
    monkeypatch.delenv("AHRIUWU_PRESET", raising=False)
    demo, tiny = ProjectResource(preset="demo"), ProjectResource(preset="tiny")
    changed = {stage for stage in cv.STAGE_MODULES if cv.code_version(stage, demo) != cv.code_version(stage, tiny)}
    # The tiny preset has the demo's frame settings and another split, tokenizer, world model and evaluation; its
    # demo source renders fewer, shorter videos. Latents read no setting.
    assert changed == {"videos", "dataset_manifest", "tokenizer", "dynamics", "evaluation"}
    other_tokenizer = ProjectResource(preset="demo", tokenizer_kind="transformer")
    changed = {s for s in cv.STAGE_MODULES if cv.code_version(s, demo) != cv.code_version(s, other_tokenizer)}
    assert changed == {"tokenizer"}
    # A setting no stage's output depends on changes no version.
    links = ProjectResource(preset="demo", play_url="http://example.invalid/")
    assert all(cv.code_version(s, demo) == cv.code_version(s, links) for s in cv.STAGE_MODULES)
    assert cv.stage_settings("dynamics", demo) == {"dynamics": demo.preset_config().dynamics}
    assert dataclasses.is_dataclass(cv.stage_settings("evaluation", demo)["evaluation"])
    with pytest.raises(KeyError, match="no stage 'render'"):
        cv.stage_settings("render", demo)


def test_run_tags_only_under_an_override(monkeypatch):
    monkeypatch.setenv("AHRIUWU_PRESET", "tiny")
    assert cv.run_tags("dynamics", ProjectResource()) == {}  # the environment's project is the deployment's
    overridden = ProjectResource(preset="demo")
    assert cv.run_tags("dynamics", overridden) == {cv.CODE_VERSION_TAG: cv.code_version("dynamics", overridden)}
    assert cv.code_version("dynamics", overridden) != cv.code_version("dynamics", ProjectResource())


def test_every_library_module_an_asset_imports_is_in_its_stages_closure():
    """STAGE_MODULES names what each stage runs: a library import added to an asset's function (or to a helper of
    its file) without adding it there would leave that code out of the stage's version."""
    import ast
    from pathlib import Path

    assets_dir = Path(cv.__file__).parent / "assets"
    missing = []
    for path in sorted(assets_dir.glob("*.py")):
        tree = ast.parse(path.read_text())
        functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
        for stage in cv.STAGE_MODULES:
            if stage not in functions:
                continue
            closure = cv.source_closure(cv.STAGE_MODULES[stage])
            # the stage's own function and the private helpers of its file it calls (e.g. _dynamics_checks)
            called = {n.id for n in ast.walk(functions[stage]) if isinstance(n, ast.Name)}
            bodies = [
                functions[stage],
                *(f for name, f in functions.items() if name.startswith("_") and name in called),
            ]
            for node in (n for body in bodies for n in ast.walk(body)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ahriuwu_core"):
                    names = [f"{node.module}.{a.name}" for a in node.names]
                    found = [n for n in names if cv.module_file(n)] or [node.module]
                    missing += [f"{path.name}:{stage}: {m}" for m in found if m not in closure]
    assert not missing, missing
