"""A scratch Dagster project for tests: its own DAGSTER_HOME and data root, the tiny preset, a folder source."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scratch_project(tmp: Path, src: Path, mp) -> tuple[Path, Path]:
    """Set up tmp/home (with the project's dagster.yaml) and tmp/assets, and point the environment at them through
    `mp` (a pytest MonkeyPatch). Returns (home, data_root)."""
    home, data_root = tmp / "home", tmp / "assets"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    for k, v in {
        "DAGSTER_HOME": str(home),
        "AHRIUWU_DATA_ROOT": str(data_root),
        "AHRIUWU_PRESET": "tiny",
        "AHRIUWU_SOURCE": f"folder:{src}",
        "AHRIUWU_AUTOMATION": "off",
        "AHRIUWU_DEVICE": "cpu",
    }.items():
        mp.setenv(k, v)
    return home, data_root
