"""A two-asset code location on the project's executor, for the pool tests: `holder` keeps the `gpu` slot until a
release file appears; `quick` takes the slot and returns at once."""

import os
import time
from pathlib import Path

from dagster import Definitions, asset

from pipeline.executor import pool_aware_executor


@asset(pool="gpu")
def holder() -> None:
    release = Path(os.environ["POOL_TEST_RELEASE"])
    print("holding the gpu slot", flush=True)
    deadline = time.time() + 120
    while not release.exists() and time.time() < deadline:
        time.sleep(0.1)


@asset(pool="gpu")
def quick() -> None:
    print("quick ran", flush=True)


defs = Definitions(assets=[holder, quick], executor=pool_aware_executor)
