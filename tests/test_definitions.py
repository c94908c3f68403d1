"""The code location as Dagster's own tooling sees it: `dg check defs` loads it, every asset says what it is and
who owns it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests._instance import ROOT, scratch_project


def test_dg_check_defs_passes(tmp_path, monkeypatch):
    """`dg check defs` finds the project through pyproject's [tool.dg] and loads pipeline.definitions."""
    scratch_project(tmp_path, tmp_path / "src", monkeypatch)
    dg = Path(sys.executable).with_name("dg")
    done = subprocess.run([str(dg), "check", "defs"], cwd=ROOT, env=dict(os.environ), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr
