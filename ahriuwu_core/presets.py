"""Named presets: one set of stage configs per scale. Data, not code paths: every preset runs the same code.

- `tiny`: the test suite's whole-graph run (3 videos of 3 s: one each to train, validate and test; seconds of
  training).
- `demo`: CPU minutes on the built-in demo game (`make demo`).
- `seed`: the original project's scale: 256x256 frames, a 16x16x256 CNN latent grid, a ~60M world model.
- `medium`: a larger GPU configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ahriuwu_core.data.frames import FramesConfig
from ahriuwu_core.data.split import SplitConfig
from ahriuwu_core.demo.video import DemoConfig
from ahriuwu_core.dynamics.config import DynamicsConfig
from ahriuwu_core.dynamics.train_config import DynamicsTrainConfig
from ahriuwu_core.eval.config import EvalConfig
from ahriuwu_core.tokenizer import CNNTokenizerConfig, TokenizerTrainConfig, TransformerTokenizerConfig
from ahriuwu_core.training.optim import OptimConfig


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


# ---------------------------------------------------------------------------------------------- tokenizers

_TOKENIZERS: dict[str, TokenizerTrainConfig] = {  # the tokenizer configs the presets pick from
    # CPU minutes on 64x64 demo frames: 4x4 pixel blocks -> a 16x16 grid x 16 channels, every conv at 16x16,
    # a PCA-initialised linear path beside the ResNet path (it starts near the best linear code).
    "demo": TokenizerTrainConfig(
        kind="cnn",
        model=CNNTokenizerConfig(
            image_size=64, channels=(), patch=4, mid_channels=96, mid_blocks=2, latent_dim=16, linear_skip=True
        ),
        steps=300,
        batch_size=16,
        lpips_frames=4,
        pca_init_frames=512,
        max_train_seconds=130.0,
        optim=OptimConfig(lr=5e-4, warmup_steps=20, weight_decay=0.0, min_lr_ratio=0.05),
        log_every=25,
        ckpt_every=100,
        eval_frames=64,
    ),
    # One latent per 8x8 patch (64 x 32), each starting from its own patch (cell_skip); figures in bench/RESULTS.md.
    "demo_transformer": TokenizerTrainConfig(
        kind="transformer",
        model=TransformerTokenizerConfig(
            image_size=64,
            patch_size=8,
            num_latents=64,
            latent_dim=32,
            d_model=128,
            n_layers=3,
            dec_layers=3,
            n_heads=4,
            softcap=50.0,
            cell_skip=True,
        ),
        steps=900,
        batch_size=16,
        lpips_frames=4,
        mask_max=0.9,
        mask_start_step=350,
        mask_warmup_steps=250,
        lpips_start_step=500,  # MSE-only warm start: cheaper steps, higher held-out PSNR (bench/RESULTS.md)
        optim=OptimConfig(lr=1.5e-3, warmup_steps=30, weight_decay=0.01, min_lr_ratio=0.05),
        log_every=25,
        ckpt_every=100,
        eval_frames=64,
        max_train_seconds=300.0,
    ),
    # The original project's CNN: 256x256 -> 16x16 grid x 256 channels.
    "seed": TokenizerTrainConfig(
        kind="cnn",
        model=CNNTokenizerConfig(image_size=256, channels=(64, 128, 256, 256), blocks_per_stage=2, latent_dim=256),
        steps=100_000,
        batch_size=32,
        lpips_frames=8,
        optim=OptimConfig(lr=3e-4, warmup_steps=1000),
        log_every=100,
        ckpt_every=2000,
        eval_frames=256,
    ),
    # The paper's: 256x256, 16x16 patches, 512 latents x 16 -> reshaped to 256 x 32 for the dynamics model.
    "seed_transformer": TokenizerTrainConfig(
        kind="transformer",
        model=TransformerTokenizerConfig(
            image_size=256,
            patch_size=16,
            num_latents=512,
            latent_dim=16,
            d_model=768,
            n_layers=12,
            dec_layers=12,
            n_heads=12,
            softcap=50.0,
            out_tokens=256,
        ),
        steps=100_000,
        batch_size=32,
        frames_per_sample=2,
        lpips_frames=8,
        mask_max=0.9,
        mask_start_step=2000,
        mask_warmup_steps=10_000,
        optim=OptimConfig(lr=3e-4, warmup_steps=2000),
        log_every=100,
        ckpt_every=2000,
        eval_frames=256,
    ),
}

# ------------------------------------------------------------------------------------------- world models

# The demo model: 2x2 blocks of the 16x16x16 CNN grid (64 tokens x 64 channels, so the 128-wide stream carries a
# token whole), time attention in every layer, 2D RoPE in space attention, the clean persistence prior through a
# 3x3 action-chosen filter, the action on every latent token, and a sampler whose first step reads the finest
# step's conditional mean -- each measured to help at this scale (bench/RESULTS.md, world model).
_DEMO_MODEL = DynamicsConfig(
    pack=4,
    d_model=128,
    n_layers=8,
    n_heads=4,
    n_kv_heads=2,
    n_registers=2,
    k_max=64,
    max_frames=32,
    time_every=1,
    space_rope=True,
    persistence_prior=True,
    prior_kernel=3,
    action_to_latents=True,
    mean_first_step=True,
)
_SEED_MODEL = DynamicsConfig(
    pack=1, d_model=768, n_layers=9, n_heads=12, n_kv_heads=4, n_registers=8, k_max=64, max_frames=64
)
_MEDIUM_MODEL = DynamicsConfig(
    pack=1, d_model=1024, n_layers=16, n_heads=16, n_kv_heads=4, n_registers=16, k_max=64, max_frames=96
)

_DYNAMICS: dict[str, DynamicsTrainConfig] = {  # the world-model configs the presets pick from
    # CPU demo (`make demo`'s budget; timings in bench/RESULTS.md). No single-image examples
    # (rollouts never generate without context), most examples with a context-level prefix, 3/4 of the
    # examples on the finest step (in a few hundred steps the bootstrap targets teach little). The prior's filters
    # start at their least-squares fit on 64 training windows (seconds; the network then learns against a finished
    # prior from step 1); inference uses a 0.99 weight average (the live weights at this learning rate are noisy,
    # and worse than the prior alone).
    "demo": DynamicsTrainConfig(
        model=_DEMO_MODEL,
        steps=360,
        num_threads=0,
        batch_size=8,
        seq_len=16,
        long_seq_len=32,
        long_ratio=0.25,
        stride=2,
        optim=OptimConfig(lr=2e-3, warmup_steps=30, weight_decay=0.01),
        prior_fit_windows=64,
        ema_decay=0.99,
        ckpt_every=60,
        log_every=10,
        time_limit_s=540.0,
        shortcut_fraction=0.25,
        single_image_fraction=0.0,
        context_prefix_prob=0.8,
    ),
    "seed": DynamicsTrainConfig(
        model=_SEED_MODEL,
        steps=20000,
        batch_size=32,
        seq_len=32,
        long_seq_len=64,
        long_ratio=0.1,
        stride=4,
        optim=OptimConfig(lr=3e-4, warmup_steps=1000),
        ckpt_every=1000,
        log_every=50,
    ),
    "medium": DynamicsTrainConfig(
        model=_MEDIUM_MODEL,
        steps=100000,
        batch_size=64,
        seq_len=32,
        long_seq_len=96,
        long_ratio=0.1,
        stride=4,
        optim=OptimConfig(lr=2e-4, warmup_steps=2000, schedule="wsd"),
        ckpt_every=2000,
        log_every=100,
    ),
}


# ------------------------------------------------------------------------------------------------ presets


def _dynamics(name: str, **changes) -> DynamicsTrainConfig:
    base = _DYNAMICS[name]
    return replace(base, model=replace(base.model, **changes.pop("model", {})), **changes)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        frames=FramesConfig(width=64, height=64, hud_layout="demo"),
        tokenizers={
            "cnn": replace(_TOKENIZERS["demo"], steps=16, batch_size=8, eval_frames=16, ckpt_every=1000, log_every=10)
        },
        dynamics=_dynamics(
            "demo", steps=12, batch_size=4, model=dict(d_model=64, n_layers=2), ckpt_every=1000, num_threads=1
        ),
        evaluation=EvalConfig(context=4, horizon=4, clips_per_video=1, strip_horizons=(1, 4), zero_noise_steps=(4,)),
        # one video each for train, validation and test, so the test run goes through every split
        split=SplitConfig(validation_min_train=1),
        demo=DemoConfig(num_videos=3, duration_s=3.0),
    ),
    "demo": Preset(
        name="demo",
        frames=FramesConfig(width=64, height=64, hud_layout="demo"),
        tokenizers={"cnn": _TOKENIZERS["demo"], "transformer": _TOKENIZERS["demo_transformer"]},
        dynamics=_dynamics("demo"),
        # 16 clips per test and validation video, rolled out 32 at a time (per-forward overhead dominates on a
        # CPU). The costly extras on the test videos only: K=64 on 2 clips per video (16x the cost of K=4,
        # compared with K=4 on the same clips), the mean readout, and shuffled actions on 8 clips per video; no
        # quick eval (its one-step latent PSNR adds nothing the rollouts do not show). Timings in bench/RESULTS.md.
        evaluation=EvalConfig(
            context=16,
            horizon=16,
            clips_per_video=16,
            batch_size=32,
            also_zero_context_noise=False,
            many_steps_clips_per_video=2,
            extras_splits=("test",),
            shuffled_clips_per_video=8,
            quick_eval=False,
        ),
        demo=DemoConfig(num_videos=12, duration_s=30.0),
    ),
    "seed": Preset(
        name="seed",
        frames=FramesConfig(width=256, height=256, hud_layout="replay"),
        tokenizers={"cnn": _TOKENIZERS["seed"], "transformer": _TOKENIZERS["seed_transformer"]},
        dynamics=_dynamics("seed"),
        evaluation=EvalConfig(context=16, horizon=16, clips_per_video=4),
    ),
    "medium": Preset(
        name="medium",
        frames=FramesConfig(width=256, height=256, hud_layout="replay"),
        tokenizers={"transformer": _TOKENIZERS["seed_transformer"], "cnn": _TOKENIZERS["seed"]},
        dynamics=_dynamics("medium"),
        evaluation=EvalConfig(context=32, horizon=32, clips_per_video=4, strip_horizons=(1, 8, 16, 32)),
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (choose from {sorted(PRESETS)})")
    return PRESETS[name]
