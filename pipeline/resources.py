"""Resources: where files land, which device computes, which preset and source the project uses.

Every field reads an environment variable with a default, so `dagster dev`, `make demo` and tests configure the
same code the same way (see README "Configuration").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dagster import (
    ConfigurableResource,
    PipesContextInjector,
    PipesFileContextInjector,
    PipesFileMessageReader,
    PipesMessageReader,
    PipesSubprocessClient,
)

from pipeline.cluster import K8sLauncher

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _relative_base() -> Path:
    """What a relative data root is relative to: the checkout the code runs from, or, after a non-editable
    install (the code then sits in site-packages), the directory the UI or CLI was started in."""
    return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()


class StorageResource(ConfigurableResource):
    """The data root: videos, zarr stores, checkpoints and reports live under it. keep_runs: training run
    folders kept per stage (the newest; 0 keeps all)."""

    root: str = "assets"
    keep_runs: int = 3

    @property
    def path(self) -> Path:
        root = Path(self.root)
        return root if root.is_absolute() else _relative_base() / root

    @property
    def layout(self):
        from ahriuwu_core.data.layout import DataLayout

        return DataLayout(self.path)


class ComputeResource(ConfigurableResource):
    """`auto` picks a GPU when one is visible, else the CPU; `cuda` requires a GPU; anything else ("cpu",
    "cuda:1") is used as given."""

    device: str = "auto"
    nproc_per_node: int = 1  # > 1: dynamics training runs as N DDP ranks on this machine, reachable only locally
    # A cluster: torchrun's c10d rendezvous at HOST:PORT (it listens on every interface: other nodes join there)
    # for `nnodes` nodes; empty: single node, nothing listening off loopback.
    rdzv_endpoint: str = ""
    nnodes: int = 1
    launcher: str = "subprocess"  # where dynamics training runs: "subprocess", "k8s" or "ray" (pipeline/cluster.py)
    ray_address: str = ""  # the Ray cluster (AHRIUWU_RAY_ADDRESS): set, steps and training run there
    ray_train_workers: int = 1  # Ray Train workers of the world model (AHRIUWU_RAY_TRAIN_WORKERS)

    @contextmanager
    def step_device(self, storage: StorageResource, log=None, distributed: bool = False) -> Iterator[str]:
        """The device of one GPU step, held until the block ends. With `auto` or `cuda` each concurrent step
        leases its own GPU ("cuda:<i>", the first free one), so a `gpu` pool limit of N spreads N steps over N
        GPUs. distributed: a torchrun launch, whose ranks pick their GPUs by LOCAL_RANK, so it takes no lease."""
        from ahriuwu_core.training.devices import leased_torch_device

        if distributed or self.launcher == "ray":  # Ray assigns GPUs on a cluster: its devices are this step's
            import torch

            yield self.device if self.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
            return
        with leased_torch_device(self.device, storage.layout.device_locks(socket.gethostname()), on_wait=log) as device:
            yield device


# ProjectResource's environment variables and defaults (README "Configuration"), and the field values that mean
# "unset" where that is not the empty string.
_PROJECT_ENV = {
    "preset": ("AHRIUWU_PRESET", "demo"),
    "tokenizer_kind": ("AHRIUWU_TOKENIZER", ""),
    "source": ("AHRIUWU_SOURCE", "demo"),
    "max_height": ("AHRIUWU_MAX_HEIGHT", "720"),
    "cookies_file": ("AHRIUWU_COOKIES", ""),
    "rate_limit": ("AHRIUWU_RATE_LIMIT", ""),
    "retries": ("AHRIUWU_RETRIES", "5"),
    "max_duration_s": ("AHRIUWU_MAX_DURATION_S", str(4 * 3600)),
    "hud_layout": ("AHRIUWU_HUD_LAYOUT", ""),
    "atari_videos": ("AHRIUWU_ATARI_VIDEOS", "12"),
    "atari_seconds": ("AHRIUWU_ATARI_SECONDS", "30"),
    "play_url": ("AHRIUWU_PLAY_URL", ""),
    "tensorboard_url": ("AHRIUWU_TENSORBOARD_URL", ""),
}
_UNSET = {"max_height": 0, "retries": -1, "max_duration_s": -1.0, "atari_videos": 0, "atari_seconds": 0.0}


class ProjectResource(ConfigurableResource):
    """The preset (tiny, demo, seed, medium), the tokenizer kind and the video source the sensor lists.

    This resource is the run's whole configuration: every stage reads `preset_config()`, so a value set in the
    launchpad (its resources section) applies to every stage of that run, and no asset has a config field of
    its own that could disagree. Every field left unset reads its environment variable (`setting`).

    source: `demo`, `folder:/path`, `filelist:/path/urls.txt`, `urls:URL1,URL2`, `channel:URL`, `playlist:URL` or
    `atari:GAME,GAME` (ALE ROM ids, e.g. `atari:breakout,ms_pacman`).
    """

    preset: str = ""  # tiny, demo, seed or medium
    tokenizer_kind: str = ""  # "cnn" or "transformer"; unset: the preset's first
    source: str = ""
    max_height: int = 0
    cookies_file: str = ""
    rate_limit: str = ""
    retries: int = -1  # yt-dlp's per-request retries and ours (exponential backoff) on transient failures
    max_duration_s: float = -1.0  # longer videos are refused (0: no cap); live streams always are
    hud_layout: str = ""  # a key of conventions.HUD_LAYOUTS; unset: the preset's, except that the demo's layout
    # is applied to the demo source only (another game has no HUD mask unless configured)
    atari_videos: int = 0  # the atari source: videos per game
    atari_seconds: float = 0.0  # the atari source: each video's length
    play_url: str = ""  # where users open the play page (`make play`); unset: http://127.0.0.1:<its port>/
    tensorboard_url: str = ""  # a TensorBoard serving the data root (`make tensorboard`); unset: no link

    def setting(self, name: str):
        """The field's value, or, left at its unset default, its environment variable's (else the project's
        default). Dagster builds a resource overridden in the launchpad from the class defaults plus the fields
        given there, so an unset field must mean "as the deployment says", not a fixed value."""
        value = getattr(self, name)
        if value != type(value)(_UNSET.get(name, "")):
            return value
        var, default = _PROJECT_ENV[name]
        return type(value)(os.environ.get(var) or default)

    def overridden(self) -> dict:
        """The fields set on this resource itself (in the launchpad), rather than read from the environment."""
        unset = {name: type(getattr(self, name))(_UNSET.get(name, "")) for name in _PROJECT_ENV}
        return {name: getattr(self, name) for name in _PROJECT_ENV if getattr(self, name) != unset[name]}

    # What depends on the source being the built-in demo, in one place: its HUD layout, its champion-aware scroll
    # estimate and its ground-truth camera track (which scores the demo, never trains a model) apply to the demo
    # only.
    @property
    def is_demo(self) -> bool:
        return self.setting("source").partition(":")[0] == "demo"

    def preset_config(self):
        """The preset resolved for this project into one typed value: the source decides the HUD layout, and
        `tokenizer_kind` picks the tokenizer. Every source, the demo included, gets the preset's hash split."""
        import dataclasses

        from ahriuwu_core.presets import get_preset

        preset = get_preset(self.setting("preset"))
        frames = preset.frames
        layout = self.setting("hud_layout") or (
            frames.hud_layout if frames.hud_layout != "demo" or self.is_demo else "none"
        )
        kind = self.setting("tokenizer_kind") or next(iter(preset.tokenizers))
        return dataclasses.replace(
            preset,
            frames=dataclasses.replace(frames, hud_layout=layout),
            tokenizers={kind: preset.tokenizer_config(kind)},
        )

    def motion_estimator(self):
        """None (the evaluation's default: phase correlation with the HUD faded out), or for the demo, whose camera
        keeps the champion centred, its estimator that fades the champion out too."""
        if not self.is_demo:
            return None
        from ahriuwu_core.demo.motion import estimate_scroll

        return estimate_scroll

    def camera_track(self, layout):
        """None, or for the demo a function frames store -> the true camera position per frame, read from the
        video's fetched sidecar (`player_world_xy`): the evaluation's scroll oracle baseline, which scores the
        demo and never reaches a model."""
        if not self.is_demo:
            return None
        from ahriuwu_core.demo.motion import camera_track

        return lambda store: camera_track(layout.video_dir(Path(store).stem) / "actions.json", store)

    def source_config(self):
        from ahriuwu_core.sources import SourceConfig

        kind, _, value = self.setting("source").partition(":")
        common = dict(
            max_height=self.setting("max_height"),
            cookies_file=self.setting("cookies_file") or None,
            rate_limit=self.setting("rate_limit") or None,
            retries=self.setting("retries"),
            max_duration_s=self.setting("max_duration_s"),
        )
        if kind == "demo":
            return SourceConfig(kind="demo", demo=self.preset_config().demo, **common)
        if kind == "atari":
            from ahriuwu_core.sources.atari import AtariConfig

            atari = AtariConfig(
                games=tuple(g.strip() for g in value.split(",") if g.strip()),
                videos_per_game=self.setting("atari_videos"),
                duration_s=self.setting("atari_seconds"),
            )
            return SourceConfig(kind="atari", atari=atari, **common)
        if kind in ("folder", "filelist"):
            return SourceConfig(kind=kind, path=value, **common)
        if kind in ("urls", "channel", "playlist"):
            return SourceConfig(kind=kind, urls=[u for u in value.split(",") if u], **common)
        raise ValueError(
            f"AHRIUWU_SOURCE={self.setting('source')!r}: expected demo, folder:PATH, filelist:PATH, urls:URL,..., "
            "channel:URL, playlist:URL or atari:GAME,..."
        )


@contextlib.contextmanager
def _session_dir(base: Path) -> Iterator[Path]:
    """A Pipes session's own folder in `base`, the data root's tmp/ (not $TMPDIR), named with this process's pid
    like every temp of the project, so that files.sweep removes what a killed step process left; removed at
    close."""
    from ahriuwu_core.data.files import sweep, temp_path

    base.mkdir(parents=True, exist_ok=True)
    sweep(base)
    folder = temp_path(base / "pipes")
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class DataRootContextInjector(PipesContextInjector):
    """Dagster's file context injector, its file in a session folder under the data root."""

    def __init__(self, root: Path):
        from ahriuwu_core.data.layout import DataLayout

        self.folder = DataLayout(root).tmp_dir

    @contextlib.contextmanager
    def inject_context(self, context_data) -> Iterator[dict]:
        with _session_dir(self.folder) as folder:
            with PipesFileContextInjector(str(folder / "context.json")).inject_context(context_data) as params:
                yield params

    def no_messages_debug_text(self) -> str:
        return f"Attempted to inject context via a file under {self.folder}"


class DataRootMessageReader(PipesMessageReader):
    """Dagster's file message reader, its file in a session folder under the data root."""

    def __init__(self, root: Path):
        from ahriuwu_core.data.layout import DataLayout

        self.folder = DataLayout(root).tmp_dir

    @contextlib.contextmanager
    def read_messages(self, handler) -> Iterator[dict]:
        with _session_dir(self.folder) as folder:
            with PipesFileMessageReader(str(folder / "messages.jsonl")).read_messages(handler) as params:
                yield params

    def no_messages_debug_text(self) -> str:
        return f"Attempted to read messages from a file under {self.folder}"


def resources_from_env() -> dict:
    env = os.environ.get
    storage = StorageResource(root=env("AHRIUWU_DATA_ROOT", "assets"), keep_runs=int(env("AHRIUWU_KEEP_RUNS", "3")))
    return {
        "storage": storage,
        "compute": ComputeResource(
            device=env("AHRIUWU_DEVICE", "auto"),
            nproc_per_node=int(env("AHRIUWU_NPROC_PER_NODE", "1")),
            rdzv_endpoint=env("AHRIUWU_RDZV_ENDPOINT", ""),
            nnodes=int(env("AHRIUWU_NNODES", "1")),
            launcher=env("AHRIUWU_LAUNCHER", "ray" if env("AHRIUWU_RAY_ADDRESS") else "subprocess"),
            ray_address=env("AHRIUWU_RAY_ADDRESS", ""),
            ray_train_workers=int(env("AHRIUWU_RAY_TRAIN_WORKERS", "1")),
        ),
        "pipes_subprocess_client": PipesSubprocessClient(
            cwd=str(PROJECT_ROOT),
            context_injector=DataRootContextInjector(storage.path),
            message_reader=DataRootMessageReader(storage.path),
        ),
        "k8s": K8sLauncher(
            image=env("AHRIUWU_K8S_IMAGE", ""),
            namespace=env("AHRIUWU_K8S_NAMESPACE", "default"),
            volume_claim=env("AHRIUWU_K8S_VOLUME_CLAIM", "ahriuwu-data"),
            gpus=int(env("AHRIUWU_K8S_GPUS", "0")),
        ),
        "project": ProjectResource(),  # every field from its environment variable
    }
