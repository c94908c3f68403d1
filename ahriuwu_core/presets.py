"""Named presets: one set of stage configs per scale. Data, not code paths: every preset runs the same code.

- `tiny`: the test suite's whole-graph run (3 videos of 3 s, seconds of training).
- `demo`: CPU minutes on the built-in demo game (`make demo`).
- `seed`: the original project's scale: 256x256 frames, a 16x16x256 CNN latent grid, a ~60M world model.
- `medium`: a larger GPU configuration.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace

from ahriuwu_core.demo_game import DemoConfig
from ahriuwu_core.dynamics.train import DYNAMICS_PRESETS, DynamicsTrainConfig
from ahriuwu_core.evaluate import EvalConfig
from ahriuwu_core.split import SplitConfig
from ahriuwu_core.frames import FramesConfig
from ahriuwu_core.tokenizer import TOKENIZER_PRESETS, TokenizerTrainConfig


@dataclass(frozen=True)
class Preset:
    name: str
    frames: FramesConfig
    tokenizers: dict[str, TokenizerTrainConfig]  # by kind; the first is the default
    dynamics: DynamicsTrainConfig
    evaluation: EvalConfig
    split: SplitConfig = field(default_factory=SplitConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)

    def tokenizer_config(self, kind: str = "") -> TokenizerTrainConfig:
        if not kind:
            return next(iter(self.tokenizers.values()))
        if kind not in self.tokenizers:
            raise ValueError(f"preset {self.name!r} has no {kind!r} tokenizer (choose from {sorted(self.tokenizers)})")
        return self.tokenizers[kind]


def _dynamics(name: str, **changes) -> DynamicsTrainConfig:
    base = DYNAMICS_PRESETS[name]
    model = {**base.model, **changes.pop("model", {})}
    return replace(base, model=model, **changes)


_DEMO_SPLIT = SplitConfig(heldout_ids=("demo_006", "demo_007"), heldout_fraction=0.0)

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        frames=FramesConfig(width=64, height=64, hud_layout="demo"),
        tokenizers={"cnn": replace(TOKENIZER_PRESETS["demo"], steps=16, batch_size=8, eval_frames=16, ckpt_every=1000, log_every=10)},
        dynamics=_dynamics("demo", steps=12, batch_size=4, model=dict(d_model=64, n_layers=2), ckpt_every=1000,
                           num_threads=1),
        evaluation=EvalConfig(context=4, horizon=4, clips_per_video=1, strip_horizons=(1, 4), zero_noise_steps=(4,)),
        split=SplitConfig(heldout_ids=("demo_002",), heldout_fraction=0.0),
        demo=DemoConfig(num_videos=3, duration_s=3.0),
    ),
    "demo": Preset(
        name="demo",
        frames=FramesConfig(width=64, height=64, hud_layout="demo"),
        tokenizers={"cnn": TOKENIZER_PRESETS["demo"], "transformer": TOKENIZER_PRESETS["demo_transformer"]},
        dynamics=_dynamics("demo"),
        # 16 clips per held-out video, all rolled out in one batch (per-forward overhead dominates on a CPU).
        # K=64 on 4 clips per video: 16x the cost of K=4, and compared with K=4 on the same clips.
        evaluation=EvalConfig(context=16, horizon=16, clips_per_video=16, batch_size=32,
                              also_zero_context_noise=False, many_steps_clips_per_video=4),
        split=_DEMO_SPLIT,
        demo=DemoConfig(num_videos=8, duration_s=30.0),
    ),
    "seed": Preset(
        name="seed",
        frames=FramesConfig(width=256, height=256, hud_layout="replay"),
        tokenizers={"cnn": TOKENIZER_PRESETS["seed"], "transformer": TOKENIZER_PRESETS["seed_transformer"]},
        dynamics=_dynamics("seed"),
        evaluation=EvalConfig(context=16, horizon=16, clips_per_video=4),
    ),
    "medium": Preset(
        name="medium",
        frames=FramesConfig(width=256, height=256, hud_layout="replay"),
        tokenizers={"transformer": TOKENIZER_PRESETS["seed_transformer"], "cnn": TOKENIZER_PRESETS["seed"]},
        dynamics=_dynamics("medium"),
        evaluation=EvalConfig(context=32, horizon=32, clips_per_video=4, strip_horizons=(1, 8, 16, 32)),
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (choose from {sorted(PRESETS)})")
    return PRESETS[name]


def describe(name: str) -> dict:
    """The preset as plain data (for metadata and reports)."""
    return dataclasses.asdict(get_preset(name))
