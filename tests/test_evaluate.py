import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from PIL import Image

from ahriuwu_core.data import split as S
from ahriuwu_core.data.checked_store import create_array
from ahriuwu_core.data.split import split_score
from ahriuwu_core.dynamics.config import DynamicsConfig
from ahriuwu_core.dynamics.model import WorldModel
from ahriuwu_core.eval import __main__ as EM
from ahriuwu_core.eval import action_control as EA
from ahriuwu_core.eval import checks as EK
from ahriuwu_core.eval import config as EC
from ahriuwu_core.eval import report as EP
from ahriuwu_core.eval import rollouts as ER
from ahriuwu_core.eval import run as EV
from ahriuwu_core.images import metrics as M
from ahriuwu_core.images import pictures as R
from ahriuwu_core.tokenizer.cnn import CNNTokenizer, CNNTokenizerConfig
from ahriuwu_core.training.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread_module")

SIZE = 32  # smallest frame AlexNet-LPIPS accepts comfortably
CONTEXT, HORIZON = 3, 4

# ------------------------------------------------------------------------------------------ fixtures


def write_frames_store(path: Path, video_id: str, num_frames: int = 12, with_actions: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (SIZE * 2, SIZE * 2, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, (t, 2 * t), axis=(0, 1))[:SIZE, :SIZE] for t in range(num_frames)])
    actions = np.zeros((num_frames, 2), np.int16)
    actions[:, 0] = (np.arange(num_frames) % 8) + 1 if with_actions else 0
    hud = np.zeros((SIZE, SIZE), np.uint8)
    hud[-6:, -10:] = 1
    group = zarr.open_group(str(path), mode="w")
    create_array(group, "frames", data=frames, chunks=(8, SIZE, SIZE, 3))
    create_array(group, "actions", data=actions)
    create_array(group, "has_actions", data=np.full(num_frames, with_actions))
    create_array(group, "hud_mask", data=hud)
    group.attrs.update({"video_id": video_id, "fps": 20, "num_frames": num_frames})
    return path


def tiny_tokenizer():
    torch.manual_seed(0)
    return CNNTokenizer(CNNTokenizerConfig(image_size=SIZE, channels=(8, 8, 8), latent_dim=4, groups=4)).eval()


def tiny_world_model(tokenizer, k_max=4):
    torch.manual_seed(0)
    cfg = DynamicsConfig(
        num_tokens=tokenizer.num_tokens,
        token_dim=tokenizer.token_dim,
        d_model=32,
        n_layers=2,
        n_heads=2,
        n_kv_heads=1,
        time_every=2,
        n_registers=1,
        k_max=k_max,
        max_frames=16,
    )
    return WorldModel(cfg).eval()


@pytest.fixture(scope="module")
def setup(one_thread_module, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    tok = tiny_tokenizer()
    wm = tiny_world_model(tok)
    tok_path = save_checkpoint(root / "tokenizer.pt", model=tok, config=dataclasses.asdict(tok.cfg), kind="cnn")
    dyn_path = save_checkpoint(
        root / "dynamics.pt",
        model=wm,
        config=dataclasses.asdict(wm.cfg),
        kind="dynamics",
        extra={"train_config": {"context_noise": 0.2}},
    )
    stores = [
        write_frames_store(root / "demo_006.zarr", "demo_006", seed=1),
        write_frames_store(root / "vid_b.zarr", "vid_b", with_actions=False, seed=2),
    ]
    return {"root": root, "tok": tok, "wm": wm, "tok_path": tok_path, "dyn_path": dyn_path, "stores": stores}


def small_cfg(**kw):
    base = dict(context=CONTEXT, horizon=HORIZON, sampling_steps=(2, 8), clips_per_video=2, strip_horizons=(1, 4))
    base.update(kw)
    return EC.EvalConfig(**base)


# --------------------------------------------------------------------------------------------- split


def test_split_is_deterministic_stable_and_disjoint():
    cfg = S.SplitConfig()
    ids = [f"vid{i:03d}" for i in range(240)]
    split = S.split_videos(ids, cfg)
    assert split == S.split_videos(list(reversed(ids)), cfg)  # order does not matter
    train, val, test = map(set, split)
    assert train | val | test == set(ids) and not (train & val or train & test or val & test)
    assert 40 < len(test) < 80 and 25 < len(val) < 55  # roughly 1/4 and 1/6 (the hash is uniform)
    # adding videos never moves an existing one
    more = S.split_videos(ids + [f"new{i}" for i in range(60)], cfg)
    assert train <= set(more.train) and val <= set(more.validation) and test <= set(more.test)
    assert S.split_videos(ids, S.SplitConfig(salt="other")).test != split.test  # another salt, another split
    with pytest.raises(ValueError, match="test_fraction"):
        S.split_videos(ids, S.SplitConfig(test_fraction=0.9, validation_fraction=0.2))


def test_split_minimums_at_every_dataset_size():
    for n in range(1, 31):
        for seed in range(8):
            split = S.split_videos([f"s{seed}v{i}" for i in range(n)])
            train, val, test = map(len, split)
            assert train >= 1 and train + val + test == n, (n, split)
            if n == 1:
                assert (val, test) == (0, 0)
            elif n < 12:
                assert test >= 1 and (val == 0 or train >= 4), (n, split)
                if n - test - 1 >= 4:  # room for a validation video beside 4 training ones
                    assert val >= 1, (n, split)
            else:
                assert val >= 2 and test >= 4, (n, split)


def test_split_tops_up_from_the_lowest_scoring_training_videos():
    cfg = S.SplitConfig(test_fraction=0.0, validation_fraction=0.0)  # empty bands: every held-out video is a top-up
    ids = sorted((f"clip{i}" for i in range(12)), key=lambda v: split_score(v, cfg.salt))
    split = S.split_videos(ids, cfg)
    assert split.test == sorted(ids[:4]) and split.validation == sorted(ids[4:6]) and split.train == sorted(ids[6:])
    small = ids[:7]  # 1 test, then 1 validation video, as 5 (>= 4) train beside it
    assert S.split_videos(small, cfg) == (sorted(small[2:]), [small[1]], [small[0]])
    assert S.split_videos(ids[:5], cfg) == (sorted(ids[1:5]), [], [ids[0]])  # 3 would train: no validation
    assert S.split_videos(["solo"], cfg) == (["solo"], [], [])  # one video: it trains
    # a band that would hold out every video leaves one (the highest-scoring) training
    assert S.split_videos(ids[:2], S.SplitConfig(test_fraction=1.0, validation_fraction=0.0)) == (
        [ids[1]],
        [],
        [ids[0]],
    )


def test_demo_and_tiny_presets_split_by_hash():
    from ahriuwu_core.presets import get_preset

    demo, tiny = get_preset("demo"), get_preset("tiny")
    split = S.split_videos([f"demo_{i:03d}" for i in range(demo.demo.num_videos)], demo.split)
    assert demo.demo.num_videos >= 12 and len(split.validation) >= 2 and len(split.test) >= 4
    assert len(split.train) >= 6
    split = S.split_videos([f"demo_{i:03d}" for i in range(tiny.demo.num_videos)], tiny.split)
    assert tuple(map(len, split)) == (1, 1, 1)


def test_check_split_disjoint_flags_overlap_and_nothing_evaluated():
    ok, details = S.check_split_disjoint(["a", "b"], ["b", "c"])
    assert not ok and details["overlap"] == ["b"]
    ok, details = S.check_split_disjoint(["a"], [])  # one video: nothing evaluated is not a leak
    assert ok and details["num_evaluated"] == 0 and "no evaluated" in details["reason"]


# ----------------------------------------------------------------------------------------- pieces


def test_clip_starts_even_and_bounded():
    assert ER.clip_starts(100, 20, 3) == [0, 40, 80]
    assert ER.clip_starts(100, 20, 1) == [40]
    assert ER.clip_starts(10, 20, 2) == []


def test_read_clips_errors_name_the_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.zarr"):
        ER.read_clips(tmp_path / "nope.zarr", small_cfg())
    store = write_frames_store(tmp_path / "short.zarr", "short", num_frames=5)
    with pytest.raises(ER.VideoTooShort, match="short"):
        ER.read_clips(store, small_cfg())


def test_shuffled_actions_permutes_future_only():
    actions = torch.arange(2 * 6 * 2).reshape(2, 6, 2)
    out = EA.shuffled_actions(actions, context=2, seed=0)
    assert torch.equal(out[:, :2], actions[:, :2])
    assert not torch.equal(out, actions)

    def rows(a):
        return sorted(map(tuple, a[:, 2:].reshape(-1, 2).tolist()))

    assert rows(out) == rows(actions)  # same multiset of future actions
    assert torch.equal(out, EA.shuffled_actions(actions, context=2, seed=0))  # deterministic


def test_scroll_agreement_counts_opposite_motion():
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    moves = np.array([5, 1, 3, 0])  # moves[t] led into frame t: (ignored), E, N, still
    # player moves E -> map content moves W (dx<0); player N -> content moves down (dy>0)
    scrolls = iter([(-2.0, 0.0), (0.0, -3.0), (5.0, 5.0)])
    agree, counted = EA.scroll_agreement(frames, moves, lambda a, b: next(scrolls))
    # step 1 (move E, scroll W): agree; step 2 (move N, scroll up): disagree; step 3 (still): not counted
    assert (agree, counted) == (1, 2)


def test_persistence_baseline_matches_direct_computation(setup, tmp_path):
    cfg = small_cfg(
        sampling_steps=(2,),
        also_zero_context_noise=False,
        lpips_net=None,
        gif=False,
        quick_eval=False,
        action_agreement=False,
    )
    result = EV.evaluate_models(
        setup["tok"],
        setup["wm"],
        _rollout(),
        {"test": setup["stores"][:1]},
        cfg,
        tmp_path,
        train_context_noise=0.2,
        log=lambda s: None,
    )
    clips = ER.read_clips(setup["stores"][0], cfg)
    mask = clips.hud_mask
    C = CONTEXT
    expected = []
    for h in range(HORIZON):
        vals = [M.psnr(clips.frames[i, C - 1], clips.frames[i, C + h], mask) for i in range(clips.frames.shape[0])]
        expected.append(np.mean(vals))
    assert np.allclose(result["metrics"]["test"]["psnr"]["persistence"], expected)
    # hand check of one value: PSNR from the masked MSE
    a = clips.frames[0, C - 1].astype(np.float64) / 255
    b = clips.frames[0, C].astype(np.float64) / 255
    w = (mask == 0)[..., None]
    mse = ((a - b) ** 2 * w).sum() / (w.sum() * 3)
    assert M.psnr(clips.frames[0, C - 1], clips.frames[0, C], mask) == pytest.approx(10 * math.log10(1 / mse))


def _rollout():
    from ahriuwu_core.dynamics import rollout

    return rollout


def test_evaluate_writes_report_and_metrics_json_shape(setup, tmp_path):
    """Test and validation videos are scored apart, each with the full set of series, and reported test first."""
    cfg = small_cfg(sampling_steps=(2, 64))  # 64 > k_max=4 -> clamped to 4
    out = tmp_path / "run1"
    result = EV.evaluate(
        setup["tok_path"],
        setup["dyn_path"],
        {"validation": setup["stores"][1:], "test": setup["stores"][:1]},
        cfg,
        out,
        lineage={"videos": ["demo_006", "vid_b"], "code_versions": {"evaluation": "x"}},
        log=lambda s: None,
    )
    full = json.loads((out / "metrics.json").read_text())
    assert full == json.loads(json.dumps(result["metrics"]))
    assert full["splits"] == ["test", "validation"] and list(full)[:3] == ["splits", "test", "validation"]
    assert full["test"]["videos"] == ["demo_006"] and full["validation"]["videos"] == ["vid_b"]
    assert full["context_noise"]["train"] == 0.2  # read from the dynamics checkpoint
    assert full["context_noise"]["variants"]["model_k4_noise0"] == 0.0
    H = list(range(1, HORIZON + 1))
    main_keys = [
        "model_k2",
        "model_k4",
        "persistence",
        "tokenizer_ceiling",
        "persistence_motion",
        "latent_persistence",
        "persistence_blur",
    ]
    for split in ("test", "validation"):
        m = full[split]
        assert m["horizons"] == H and m["clips"] == cfg.clips_per_video
        for metric in ("psnr", "ssim", "lpips"):
            assert list(m[metric])[: len(main_keys)] == main_keys
            for key in main_keys + ["model_k2_noise0", "model_k4_noise0"]:
                assert len(m[metric][key]) == HORIZON and all(math.isfinite(v) for v in m[metric][key])
        assert "prior_only" not in m["psnr"] and "scroll_oracle" not in m["psnr"]  # no prior, no camera track
        assert "clustered" in m["psnr_margin_ci95_method"] and set(m["psnr_margin_ci95_low"]) >= {
            "model_k2",
            "latent_persistence",
            "persistence_blur",
        }
        assert len(m["persistence_blur"]["sigma_px"]) == HORIZON and "favours" in m["persistence_blur"]["note"]
        assert math.isfinite(m["quick_eval_latent_psnr"])
        assert set(m["latent_mse"]) >= {"model_k2", "model_k4", "persistence"}
    m = full["test"]
    assert len(m["action_gap_db"]) == HORIZON and m["action_gap_available"]
    assert full["validation"]["action_gap_db"] == []  # vid_b has no action labels
    # the tokenizer ceiling is decode(encode(gt)) on the horizon frames
    clips = ER.read_clips(setup["stores"][0], cfg)
    with torch.no_grad():
        gt = torch.from_numpy(clips.frames).permute(0, 1, 4, 2, 3).float() / 255
        rec = setup["tok"].decode(setup["tok"].encode(gt))
    assert np.allclose(
        m["psnr"]["tokenizer_ceiling"],
        M.psnr(ER.to_uint8(rec[:, CONTEXT:]), clips.frames[:, CONTEXT:], clips.hud_mask).mean(0),
        atol=1e-3,
    )
    # ... and latent persistence the last context frame's reconstruction, repeated
    last = np.repeat(ER.to_uint8(rec[:, CONTEXT - 1 : CONTEXT]), HORIZON, axis=1)
    assert np.allclose(
        m["psnr"]["latent_persistence"], M.psnr(last, clips.frames[:, CONTEXT:], clips.hud_mask).mean(0), atol=1e-3
    )
    # files
    report = (out / "report.md").read_text()
    for needle in (
        "psnr_vs_horizon_test.png",
        "psnr_vs_horizon_validation.png",
        "strip_demo_006.png",
        "rollout_vid_b.gif",
        "Lineage",
        "code_versions",
        "| horizon |",
        "Config",
        "persistence_blur: sigma",
    ):
        assert needle in report
    assert (
        report.index("## Test videos") < report.index("## Validation videos") < report.index("## Checks (on the test")
    )
    for split in ("test", "validation"):
        assert Image.open(out / f"psnr_vs_horizon_{split}.png").size == (640, 400)
        assert len(result["plot_pngs"][split]) < 40_000
    assert Image.open(out / "rollout_demo_006.gif").n_frames == CONTEXT + HORIZON
    assert result["strip_png"][:8] == b"\x89PNG\r\n\x1a\n" and len(result["strip_png"]) < 40_000
    flat = result["flat"]
    for key in (
        "test_psnr_h1_model_k2",
        "test_psnr_h4_persistence",
        "test_ssim_h1_model_k2",
        "test_lpips_h4_persistence",
        "test_clips",
        "test_psnr_margin_ci95_low_h1_model_k2",
        "test_psnr_h4_tokenizer_ceiling",
        "test_psnr_h1_latent_persistence",
        "test_lpips_h4_persistence_blur",
        "test_action_gap_db_h1",
        "test_quick_eval_latent_psnr",
        "validation_psnr_h1_model_k2",
        "validation_clips",
        "eval_seconds",
    ):
        assert key in flat and math.isfinite(flat[key]), key
    assert list(flat).index("test_psnr_h1_model_k2") < list(flat).index("validation_psnr_h1_model_k2")
    assert not list(out.glob(".*tmp*"))  # no temp files left behind


def test_baselines_that_need_a_prior_or_a_camera_appear_with_them(setup, tmp_path):
    """prior_only with a model that has an action prior (untrained, it is persistence in latent space, so it
    scores as latent_persistence); scroll_oracle with a camera track. The stores' noise content moves by
    (+2, +1) pixels a frame, so a camera at (-2t, -t) makes the oracle right but for the edges it repeats (the
    wrong way it would score like persistence); blur never loses to persistence, which is its sigma 0."""
    tok = setup["tok"]
    torch.manual_seed(0)
    wm = WorldModel(
        DynamicsConfig(
            num_tokens=tok.num_tokens,
            token_dim=tok.token_dim,
            d_model=32,
            n_layers=1,
            n_heads=2,
            n_kv_heads=1,
            n_registers=1,
            k_max=4,
            max_frames=16,
            persistence_prior=True,
            prior_kernel=3,
        )
    ).eval()

    def camera(store):
        return np.stack([-2.0 * np.arange(12), -1.0 * np.arange(12)], 1)

    cfg = small_cfg(sampling_steps=(2,), lpips_net=None, gif=False, quick_eval=False)
    m = EV.evaluate_models(
        tok,
        wm,
        _rollout(),
        {"test": setup["stores"]},
        cfg,
        tmp_path,
        train_context_noise=0.1,
        log=lambda s: None,
        camera_track=camera,
    )["metrics"]["test"]
    assert m["psnr"]["prior_only"] == pytest.approx(m["psnr"]["latent_persistence"], abs=1e-6)
    assert all(o > p + 4 for o, p in zip(m["psnr"]["scroll_oracle"], m["psnr"]["persistence"]))
    assert all(b >= p - 1e-9 for b, p in zip(m["psnr"]["persistence_blur"], m["psnr"]["persistence"]))
    assert "scroll_oracle" in m["psnr_margin_ci95_low"]


def test_evaluate_refuses_unknown_splits_and_nothing_to_score(setup, tmp_path):
    cfg = small_cfg(sampling_steps=(2,), lpips_net=None, gif=False, quick_eval=False)
    with pytest.raises(ValueError, match="unknown split"):
        EV.evaluate_models(
            setup["tok"], setup["wm"], _rollout(), {"heldout": setup["stores"]}, cfg, tmp_path, log=lambda s: None
        )
    with pytest.raises(ValueError, match="no frames stores"):
        EV.evaluate_models(
            setup["tok"], setup["wm"], _rollout(), {"test": [], "validation": []}, cfg, tmp_path, log=lambda s: None
        )


def test_costly_extras_run_only_on_the_splits_named(setup, tmp_path):
    cfg = small_cfg(
        sampling_steps=(2, 4), lpips_net=None, gif=False, extras_splits=("test",), shuffled_clips_per_video=1
    )
    m = EV.evaluate_models(
        setup["tok"],
        setup["wm"],
        _rollout(),
        {"test": setup["stores"][:1], "validation": setup["stores"][:1]},
        cfg,
        tmp_path,
        train_context_noise=0.1,
        log=lambda s: None,
    )["metrics"]
    test, val = m["test"], m["validation"]
    assert {"model_k4", "model_k2_noise0"} <= set(test["psnr"]) and test["action_gap_db"]
    assert test["clips"] == 2 and test["action_gap_clips"] == 1  # shuffled actions on the first clip only
    assert "model_k4" not in val["psnr"] and "model_k2_noise0" not in val["psnr"] and val["action_gap_db"] == []
    assert "model_k2_mean" in test["psnr"] and "model_k2_mean" not in val["psnr"]
    assert test["quick_eval_latent_psnr"] is not None and val["quick_eval_latent_psnr"] is None
    # the same clips, the same first variant: the same scores on both splits
    assert val["psnr"]["model_k2"] == test["psnr"]["model_k2"]


def test_short_video_is_skipped_and_named(setup, tmp_path):
    short = write_frames_store(tmp_path / "short.zarr", "short", num_frames=5)
    cfg = small_cfg(sampling_steps=(2,), lpips_net=None, gif=False, action_agreement=False, quick_eval=False)
    res = EV.evaluate_models(
        setup["tok"],
        setup["wm"],
        _rollout(),
        {"test": [short, setup["stores"][1]]},
        cfg,
        tmp_path / "o",
        train_context_noise=0.1,
        log=lambda s: None,
    )
    m = res["metrics"]["test"]
    assert m["videos"] == ["vid_b"] and m["skipped_videos"] == ["short"]
    with pytest.raises(ValueError, match="short"):
        EV.evaluate_models(
            setup["tok"],
            setup["wm"],
            _rollout(),
            {"test": [short]},
            cfg,
            tmp_path / "p",
            train_context_noise=0.1,
            log=lambda s: None,
        )


def test_quick_eval_latents_scores_evenly_spaced_windows_of_every_store(tmp_path):
    """A model that x-predicts each frame as the clean frame before it (zeros for a window's first) makes the quick
    eval copy-last in latent space, computable by hand: per frame 10 log10(4 / MSE), averaged over each window's
    frames, then over every window of every store. Windows of 6 frames: a 10-frame store gives the two at frames
    0 and 4; a 4-frame store one window of all 4."""

    class CopyPrevious(torch.nn.Module):  # unit-scale latents; records the labels it was given
        def __init__(self):
            super().__init__()
            self.seen = []

        def standardize(self, z):
            return z.float()

        def unstandardize(self, z):
            return z.float()

        def forward(self, z, tau, step, actions, has_actions, previous=None):
            self.seen.append((actions.clone(), has_actions.clone()))
            return previous

    rng = np.random.default_rng(3)
    videos = []
    for name, n in (("long", 10), ("short", 4)):
        lat = np.tanh(rng.standard_normal((n, 4, 3))).astype(np.float16)
        act = rng.integers(0, 5, (n, 2)).astype(np.int16)
        has = rng.random(n) < 0.7
        group = zarr.open_group(str(tmp_path / f"{name}.zarr"), mode="w")
        create_array(group, "latents", data=lat)
        create_array(group, "actions", data=act)
        create_array(group, "has_actions", data=has)
        videos.append((tmp_path / f"{name}.zarr", lat.astype(np.float64), act, has))

    def by_hand(window):  # (T, N, D) -> mean over frames of the PSNR of the frame before (zeros for the first)
        before = np.concatenate([np.zeros_like(window[:1]), window[:-1]])
        return np.mean(10 * np.log10(4 / ((before - window) ** 2).mean(axis=(1, 2))))

    (_, long_lat, long_act, long_has), (_, short_lat, short_act, short_has) = videos
    expected = np.mean([by_hand(long_lat[0:6]), by_hand(long_lat[4:10]), by_hand(short_lat)])
    model = CopyPrevious()
    value = ER.quick_eval_latents(model, [v[0] for v in videos], window=6, windows_per_video=2, seed=5)
    assert value == pytest.approx(expected, rel=1e-6)
    # Each window's own labels reached the model.
    windows = [(long_act[0:6], long_has[0:6]), (long_act[4:10], long_has[4:10]), (short_act, short_has)]
    assert len(model.seen) == 3
    for (actions, has), (want_actions, want_has) in zip(model.seen, windows):
        assert actions.tolist() == [want_actions.tolist()] and has.tolist() == [want_has.tolist()]


def test_quick_latent_psnr_is_one_step_from_tau_half_by_hand():
    """The quick eval by hand: standardize, z = 0.5*noise + 0.5*x at tau = d = 0.5 for every frame, one x-prediction,
    unstandardize, PSNR over the [-1, 1] latent range."""

    class Affine(torch.nn.Module):  # x-prediction = 0.8 * z + 0.1, and it records what it was given
        def standardize(self, z):
            return (z - 0.2) / 0.5

        def unstandardize(self, z):
            return z * 0.5 + 0.2

        def forward(self, z, tau, step, actions, has_actions, previous=None):
            self.seen = (tau.clone(), step.clone())
            return 0.8 * z + 0.1

    model = Affine()
    g = torch.Generator().manual_seed(0)
    lat = torch.rand(2, 5, 6, 3, generator=g) * 2 - 1
    value = ER.quick_latent_psnr(model, lat, None, None, seed=4)
    noise = torch.randn(lat.shape, generator=torch.Generator().manual_seed(5))  # the seed + 1 stream
    pred = (0.8 * (0.5 * noise + 0.5 * (lat - 0.2) / 0.5) + 0.1) * 0.5 + 0.2
    mse = ((pred - lat) ** 2).mean(dim=(-2, -1)).double()
    assert value == pytest.approx(float((10 * torch.log10(4.0 / mse)).mean()), rel=1e-6)
    tau, step = model.seen
    assert (tau == 0.5).all() and (step == 0.5).all()


def test_action_gap_is_zero_when_actions_do_not_matter(setup, tmp_path):
    """A world model that ignores actions must show no gap (true vs shuffled rollouts are identical)."""

    def action_blind_rollout(
        model, context, actions, has_actions, horizon, sampling_steps, context_noise, generator, **kw
    ):
        return context[:, -1:].expand(-1, horizon, -1, -1)

    cfg = small_cfg(sampling_steps=(2,), lpips_net=None, gif=False, action_agreement=False)
    res = EV.evaluate_models(
        setup["tok"],
        setup["wm"],
        action_blind_rollout,
        {"test": setup["stores"][:1]},
        cfg,
        tmp_path,
        train_context_noise=0.1,
        log=lambda s: None,
    )
    assert res["metrics"]["test"]["action_gap_db"] == [0.0] * HORIZON
    # ...and without action labels there is no gap to report
    res = EV.evaluate_models(
        setup["tok"],
        setup["wm"],
        action_blind_rollout,
        {"test": setup["stores"][1:]},
        cfg,
        tmp_path / "b",
        train_context_noise=0.1,
        log=lambda s: None,
    )
    assert res["metrics"]["test"]["action_gap_db"] == [] and not res["metrics"]["test"]["action_gap_available"]


def test_action_gap_has_the_sign_and_size_of_the_models_use_of_actions(setup, tmp_path):
    """An oracle that returns the true future latents only when it is given the true actions (else it copies the
    last context frame): the gap is large and positive, and the true-action series equals the tokenizer ceiling.
    Its mirror image (right only for the shuffled actions) gives the same gap with the opposite sign."""
    from ahriuwu_core.tokenizer.encode import encode_frames

    cfg = small_cfg(
        sampling_steps=(2,), lpips_net=None, gif=False, action_agreement=False, quick_eval=False, mean_readout=False
    )
    clips = ER.read_clips(setup["stores"][0], cfg)
    truth = {}
    for i in range(len(clips.starts)):
        latents = encode_frames(setup["tok"], ER.to_device_frames(clips.frames[i : i + 1], "cpu"))
        truth[clips.actions[i].tobytes()] = latents[0, CONTEXT:]

    def oracle(invert):
        def rollout_fn(model, context, actions, has_actions, horizon, sampling_steps, context_noise, generator, **kw):
            rows = []
            for b in range(actions.shape[0]):
                known = truth.get(actions[b].numpy().tobytes())
                rows.append(known if (known is not None) != invert else context[b, -1:].expand(horizon, -1, -1))
            return torch.stack([truth[clips.actions[b].tobytes()] if r is None else r for b, r in enumerate(rows)])

        return rollout_fn

    res = EV.evaluate_models(
        setup["tok"],
        setup["wm"],
        oracle(False),
        {"test": setup["stores"][:1]},
        cfg,
        tmp_path / "a",
        train_context_noise=0.1,
        log=lambda s: None,
    )
    m = res["metrics"]["test"]
    assert m["psnr"]["model_k2"] == pytest.approx(m["psnr"]["tokenizer_ceiling"], abs=1e-9)
    # By hand: PSNR of the decoded truth minus PSNR of the decoded copy of the last context latent, per horizon.
    with torch.no_grad():
        true_u8 = ER.to_uint8(setup["tok"].decode(torch.stack(list(truth.values()))))
        copy = torch.stack(
            [
                encode_frames(setup["tok"], ER.to_device_frames(clips.frames[i : i + 1], "cpu"))[
                    0, CONTEXT - 1 : CONTEXT
                ].expand(HORIZON, -1, -1)
                for i in range(len(clips.starts))
            ]
        )
        copy_u8 = ER.to_uint8(setup["tok"].decode(copy))
    future = clips.frames[:, CONTEXT:]
    expected = (M.psnr(true_u8, future, clips.hud_mask) - M.psnr(copy_u8, future, clips.hud_mask)).mean(0)
    gap = np.array(m["action_gap_db"])
    np.testing.assert_allclose(gap, expected, atol=1e-6)
    assert np.abs(gap).max() > 0.01, gap  # the shuffle really changed the outcome
    res = EV.evaluate_models(
        setup["tok"],
        setup["wm"],
        oracle(True),
        {"test": setup["stores"][:1]},
        cfg,
        tmp_path / "b",
        train_context_noise=0.1,
        log=lambda s: None,
    )
    np.testing.assert_allclose(res["metrics"]["test"]["action_gap_db"], -gap, atol=1e-9)


def test_nan_model_is_flagged_end_to_end(setup, tmp_path):
    """NaN latents decode to garbage pixels that uint8 conversion would hide; latent MSE keeps the NaN visible."""

    def nan_rollout(model, context, actions, has_actions, horizon, sampling_steps, context_noise, generator, **kw):
        return torch.full((context.shape[0], horizon, *context.shape[2:]), float("nan"))

    cfg = small_cfg(sampling_steps=(2,), lpips_net=None, gif=False, action_agreement=False, quick_eval=False)
    res = EV.evaluate_models(
        setup["tok"],
        setup["wm"],
        nan_rollout,
        {"test": setup["stores"][:1]},
        cfg,
        tmp_path,
        train_context_noise=0.1,
        log=lambda s: None,
    )
    ok, details = EK.check_no_nan(res["metrics"])
    assert not ok and "test.latent_mse.model_k2[0]" in details["non_finite"]
    assert "| no_nan | FAIL |" in (tmp_path / "report.md").read_text()


def test_cli_end_to_end(setup, tmp_path):
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "ahriuwu_core.eval",
        "--tokenizer",
        str(setup["tok_path"]),
        "--dynamics",
        str(setup["dyn_path"]),
        "--frames",
        str(setup["stores"][0]),
        "--validation",
        str(setup["stores"][1]),
        "--out",
        str(out),
        "--context",
        str(CONTEXT),
        "--horizon",
        str(HORIZON),
        "--steps",
        "2",
        "4",
        "--clips-per-video",
        "1",
        "--strip-horizons",
        "1",
        "3",
        "--device",
        "cpu",
        "--lpips-net",
        "none",
        "--no-zero-noise",
        "--lineage",
        '{"run": "cli"}',
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models; the cores are shared with other suites
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "check no_nan: pass" in proc.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["splits"] == ["test", "validation"] and m["validation"]["videos"] == ["vid_b"]
    assert list(m["test"]["psnr"]) == [
        "model_k2",
        "model_k4",
        "persistence",
        "tokenizer_ceiling",
        "persistence_motion",
        "latent_persistence",
        "persistence_blur",
        "model_k2_mean",
    ]
    assert (out / "report.md").exists() and (out / "strip_vid_b.png").exists()
    assert '"run": "cli"' in (out / "report.md").read_text()


def test_cli_bad_store_names_it(setup, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        EM.main(
            [
                "--tokenizer",
                str(setup["tok_path"]),
                "--dynamics",
                str(setup["dyn_path"]),
                "--frames",
                str(tmp_path / "missing.zarr"),
                "--out",
                str(tmp_path / "o"),
                "--device",
                "cpu",
            ]
        )


# --------------------------------------------------------------------------------------------- checks


def _metrics(model_h1=30.0, persistence_h1=25.0, k4=(30.0, 28.0), k64=(30.5, 28.5), spread=1.0):  # k4[0] = model_h1
    """metrics.json with these test scores, and validation scores that would pass every check."""
    margin = model_h1 - persistence_h1

    def section(model_h1, persistence_h1, k4, k64, margin, spread):
        return {
            "horizons": [1, 2],
            "psnr": {
                "model_k4": [model_h1, k4[1]],
                "model_k64": list(k64),
                "persistence": [persistence_h1, 20.0],
                "tokenizer_ceiling": [35.0, 35.0],
            },
            "psnr_margin_ci95_low": {"model_k4": [margin - spread, 7.0]},
            "psnr_margin_ci95_high": {"model_k4": [margin + spread, 9.0]},
            "action_gap_db": [1.0, 0.5],
            "quick_eval_latent_psnr": 20.0,
        }

    return {
        "splits": ["test", "validation"],
        "config": {"sampling_steps": [4, 64]},
        "test": section(model_h1, persistence_h1, k4, k64, margin, spread),
        "validation": section(30.0, 25.0, (30.0, 28.0), (30.2, 28.2), 5.0, 1.0),
    }


def test_check_beats_persistence():
    ok, d = EK.check_beats_persistence(_metrics())
    assert ok and d["margin_db"] == pytest.approx(5.0) and d["margin_ci95_low"] == pytest.approx(4.0)
    ok, d = EK.check_beats_persistence(_metrics(model_h1=24.0))  # a failing model
    assert not ok
    ok, _ = EK.check_beats_persistence(_metrics(model_h1=float("nan")))
    assert not ok
    # A positive mean margin whose interval reaches below 0 is not a win: too few clips or too much spread.
    ok, d = EK.check_beats_persistence(_metrics(model_h1=26.0, spread=1.5))
    assert not ok and d["margin_db"] == pytest.approx(1.0) and d["margin_ci95_low"] == pytest.approx(-0.5)


def test_check_few_steps_close():
    ok, d = EK.check_few_steps_close(_metrics())  # K=64 0.5 dB above K=4 at both horizons
    assert ok and d["max_abs_diff_db"] == pytest.approx(0.5)
    ok, d = EK.check_few_steps_close(_metrics(k64=(30.2, 29.0)))  # a good mean, but 1 dB apart at h=2
    assert not ok and d["max_abs_diff_db"] == pytest.approx(1.0)
    # K=64 on a subset of clips: compared with K=4 on exactly those clips, not with K=4 on all of them
    m = _metrics(k64=(31.0, 29.0))
    m["test"]["psnr_same_clips"] = {"model_k64": {"clips": 4, "model_k4": [30.8, 28.9], "model_k64": [31.0, 29.0]}}
    ok, d = EK.check_few_steps_close(m)
    assert ok and d["clips"] == 4 and d["max_abs_diff_db"] == pytest.approx(0.2)


def test_check_no_nan_flags_nan_and_inf_with_paths():
    ok, _ = EK.check_no_nan(_metrics())
    assert ok
    bad = _metrics()
    bad["test"]["psnr"]["model_k64"][1] = float("nan")
    bad["validation"]["quick_eval_latent_psnr"] = float("inf")
    ok, d = EK.check_no_nan(bad)
    assert not ok and set(d["non_finite"]) == {"test.psnr.model_k64[1]", "validation.quick_eval_latent_psnr"}


def test_checks_judge_the_test_videos_not_the_validation_ones():
    failing_test = _metrics(model_h1=24.0, k64=(30.2, 29.0))  # validation passes both
    assert not any(passed for name, (passed, _) in EK.run_checks(failing_test).items() if name != "no_nan")
    passing_test = _metrics()
    passing_test["validation"] = _metrics(model_h1=24.0, k64=(30.2, 29.0))["test"]
    assert all(passed for passed, _ in EK.run_checks(passing_test).values())
    assert EK.check_beats_persistence(passing_test, 1, split="validation")[0] is False
    # a bench run on validation alone is judged on it
    only = {"splits": ["validation"], "config": passing_test["config"], "validation": passing_test["validation"]}
    assert EK.judged_split(only) == "validation" and not EK.run_checks(only)["beats_persistence_h1"][0]


def test_run_checks_names():
    names = set(EK.run_checks(_metrics()))
    assert names == {"beats_persistence_h1", "no_nan", "k4_within_0.5db_of_k64"}


# -------------------------------------------------------------------------------------------- pictures


def test_plot_and_small_png(tmp_path):
    img = R.line_plot(
        [1, 2, 3],
        {"model_k4": [20.0, 18.0, float("nan")], "persistence": [19.0, 17.0, 16.0]},
        "t",
        "horizon",
        "PSNR (dB)",
    )
    arr = np.asarray(img)
    assert arr.shape == (400, 640, 3)
    assert (np.abs(arr.astype(int) - R.SERIES_COLOURS["model_k4"]).sum(-1) == 0).any()  # the line is drawn
    data = R.small_png_bytes(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 2000, 3), np.uint8)), max_bytes=30_000
    )
    assert len(data) <= 30_000
    assert R.png_data_uri(img).startswith("data:image/png;base64,")


def test_many_steps_variant_on_a_subset_is_compared_on_the_same_clips(setup, tmp_path):
    cfg = small_cfg(
        sampling_steps=(2, 4),
        clips_per_video=2,
        many_steps_clips_per_video=1,
        lpips_net=None,
        gif=False,
        quick_eval=False,
        mean_readout=False,
        also_zero_context_noise=False,
    )
    m = EV.evaluate_models(
        setup["tok"],
        setup["wm"],
        _rollout(),
        {"test": setup["stores"]},
        cfg,
        tmp_path,
        train_context_noise=0.1,
        log=lambda s: None,
    )["metrics"]["test"]
    assert m["clips"] == 4 and m["clips_per_series"]["model_k2"] == 4 and m["clips_per_series"]["model_k4"] == 2
    same = m["psnr_same_clips"]["model_k4"]
    assert same["clips"] == 2 and len(same["model_k2"]) == HORIZON
    assert same["model_k2"] != m["psnr"]["model_k2"]  # K=2 on the 2 subset clips, not on all 4
    assert "model_k4" not in m["psnr_margin_ci95_low"] and "model_k2" in m["psnr_margin_ci95_low"]
    assert EP.series_label(m, "model_k4") == "model_k4 (2 clips)" and EP.series_label(m, "model_k2") == "model_k2"
