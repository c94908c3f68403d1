import json
import math
import os
import random
import signal

import numpy as np
import pytest
import torch
from torch import nn

from ahriuwu_core.training.checkpoint import load_checkpoint, save_checkpoint
from ahriuwu_core.training.loss_norm import RunningRMS
from ahriuwu_core.training.optim import OptimConfig, lr_multiplier, make_optimizer, make_scheduler
from ahriuwu_core.training.progress import Progress, format_seconds
from ahriuwu_core.training.run_control import StopRequested


class Tiny(nn.Module):
    def __init__(self, extra: bool = False):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.lin = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.out = nn.Linear(4, 1)
        if extra:
            self.head2 = nn.Linear(4, 2)

    def forward(self, idx):
        return self.out(self.norm(torch.relu(self.lin(self.embed(idx))))).squeeze(-1)


def _train(model, opt, sched, steps, start, data_rng, stop=None, ckpt=None):
    """Loss uses numpy (data_rng), torch global RNG (dropout-like noise) and python random."""
    for step in range(start + 1, steps + 1):
        idx = torch.from_numpy(data_rng.integers(0, 5, size=8))
        noise = torch.randn(8) * 0.1
        target = idx.float() * 0.3 + noise + random.random() * 0.01
        loss = (model(idx) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if stop is not None and stop.should_stop(at_boundary=step % 2 == 0):
            save_checkpoint(
                ckpt, model=model, optimizer=opt, scheduler=sched, step=step, data_position=data_rng.bit_generator.state
            )
            return step
    return steps


def _fresh(seed=0):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = Tiny()
    cfg = OptimConfig(lr=1e-2, warmup_steps=3)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, total_steps=20)
    return model, opt, sched


def test_resume_is_exact(tmp_path):
    model_a, opt_a, sched_a = _fresh()
    _train(model_a, opt_a, sched_a, 20, 0, np.random.default_rng(1))

    model_b, opt_b, sched_b = _fresh()
    rng_b = np.random.default_rng(1)
    _train(model_b, opt_b, sched_b, 10, 0, rng_b)
    ckpt = tmp_path / "last.pt"
    save_checkpoint(
        ckpt, model=model_b, optimizer=opt_b, scheduler=sched_b, step=10, data_position=rng_b.bit_generator.state
    )
    # Scramble everything the resumed run must restore.
    torch.manual_seed(999)
    random.seed(999)
    np.random.seed(999)
    model_c, opt_c, sched_c = _fresh(seed=123)
    info = load_checkpoint(ckpt, model=model_c, optimizer=opt_c, scheduler=sched_c)
    assert info["step"] == 10 and info["missing_keys"] == [] and info["unexpected_keys"] == []
    rng_c = np.random.default_rng()
    rng_c.bit_generator.state = info["data_position"]
    _train(model_c, opt_c, sched_c, 20, info["step"], rng_c)

    for (k, a), (_, c) in zip(model_a.state_dict().items(), model_c.state_dict().items()):
        assert torch.equal(a, c), k
    assert sched_a.get_last_lr() == sched_c.get_last_lr()
    # And the resume actually mattered: a run without the second half differs.
    assert not torch.equal(model_a.lin.weight, model_b.lin.weight)


def test_checkpoint_atomic_and_reports_keys(tmp_path):
    model = Tiny(extra=True)
    ckpt = tmp_path / "sub" / "ck.pt"
    save_checkpoint(ckpt, model=model, step=3, extra={"note": "x"}, config={"a": 1}, kind="tiny")
    assert ckpt.is_file()
    assert [p.name for p in ckpt.parent.iterdir()] == ["ck.pt"]  # no temp file left behind
    logs = []
    target = Tiny()
    target.out = nn.Linear(4, 3)  # shape mismatch -> reported as missing, not loaded
    target.new_layer = nn.Linear(2, 2)
    info = load_checkpoint(ckpt, model=target, log=logs.append)
    assert "head2.weight" in info["unexpected_keys"]
    assert "new_layer.weight" in info["missing_keys"]
    assert "out.weight" in info["mismatched_keys"] and "out.weight" in info["missing_keys"]
    assert info["extra"] == {"note": "x"} and info["config"] == {"a": 1} and info["kind"] == "tiny"
    assert torch.equal(target.lin.weight, model.lin.weight)
    assert logs and "missing" in logs[0]
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt", model=target)


def test_optimizer_no_decay_groups():
    model = Tiny()
    opt = make_optimizer(model, OptimConfig(weight_decay=0.1))
    decay_ids = {id(p) for p in opt.param_groups[0]["params"]}
    assert opt.param_groups[0]["weight_decay"] == 0.1 and opt.param_groups[1]["weight_decay"] == 0.0
    assert decay_ids == {id(model.lin.weight), id(model.out.weight)}


def test_lr_schedules_hand_values():
    cfg = OptimConfig(warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_multiplier(0, cfg, 110) == pytest.approx(0.1)
    assert lr_multiplier(9, cfg, 110) == pytest.approx(1.0)
    assert lr_multiplier(10, cfg, 110) == pytest.approx(1.0)
    assert lr_multiplier(60, cfg, 110) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway: cos = 0
    assert lr_multiplier(110, cfg, 110) == pytest.approx(0.1)
    wsd = OptimConfig(warmup_steps=0, schedule="wsd", min_lr_ratio=0.0, wsd_decay_fraction=0.2)
    assert lr_multiplier(79, wsd, 100) == 1.0
    assert lr_multiplier(90, wsd, 100) == pytest.approx(0.5)
    const = OptimConfig(warmup_steps=4, schedule="constant")
    assert lr_multiplier(1, const, 100) == pytest.approx(0.5) and lr_multiplier(50, const, 100) == 1.0
    with pytest.raises(ValueError, match="bogus"):
        make_scheduler(make_optimizer(Tiny(), cfg), OptimConfig(schedule="bogus"), 10)


def test_running_rms_hand_computed():
    rms = RunningRMS(decay=0.5)
    out1 = rms("mse", torch.tensor(2.0))
    # ms = 0.5*4 = 2, bias-corrected 2/(1-0.5) = 4 -> rms 2
    assert float(out1) == pytest.approx(1.0)
    out2 = rms("mse", torch.tensor(4.0))
    # ms = 0.5*2 + 0.5*16 = 9, corrected 9/(1-0.25) = 12
    assert float(out2) == pytest.approx(4.0 / math.sqrt(12.0))
    assert float(rms("lpips", torch.tensor(0.01))) == pytest.approx(1.0, rel=1e-4)  # independent per name
    state = rms.state_dict()
    other = RunningRMS()
    other.load_state_dict(state)
    assert other.rms("mse") == pytest.approx(math.sqrt(12.0))
    x = torch.tensor(3.0, requires_grad=True)
    rms("g", x).backward()
    assert float(x.grad) == pytest.approx(1.0 / 3.0)  # gradient through numerator only


def test_progress_logs_and_jsonl(tmp_path):
    lines = []
    jl = tmp_path / "log.jsonl"
    p = Progress(10, log=lines.append, jsonl_path=jl, every=4, items_per_step=8)
    logged = [p.update(s, loss=torch.tensor(0.5), lr=1e-3) for s in range(1, 11)]
    assert logged == [False, False, False, True, False, False, False, True, False, True]
    assert len(lines) == 3 and "ETA" in lines[0] and "step 4/10" in lines[0] and "frames/s" in lines[0]
    recs = [json.loads(line) for line in jl.read_text().splitlines()]
    assert [r["step"] for r in recs] == [4, 8, 10]
    assert recs[0]["loss"] == 0.5 and "steps_per_s" in recs[0] and "frames_per_s" in recs[0]
    assert format_seconds(3725) == "1h02m05s" and format_seconds(65) == "1m05s"


def test_stop_requested_signals(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    with StopRequested(log=lambda s: None) as stop:
        assert not stop.should_stop(at_boundary=True)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested
        assert not stop.should_stop(at_boundary=False)
        assert stop.should_stop(at_boundary=True)
    assert signal.getsignal(signal.SIGTERM) is previous
    with StopRequested(log=lambda s: None) as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.should_stop(at_boundary=False)
        stop.request("boundary")  # never downgrades a step request
        assert stop.should_stop(at_boundary=False)


def test_stop_then_resume_matches_straight_run(tmp_path):
    model_a, opt_a, sched_a = _fresh()
    _train(model_a, opt_a, sched_a, 20, 0, np.random.default_rng(1))
    model_b, opt_b, sched_b = _fresh()
    ckpt = tmp_path / "last.pt"
    stop = StopRequested(install_handlers=False)
    stop.request("step")
    stopped_at = _train(model_b, opt_b, sched_b, 20, 0, np.random.default_rng(1), stop=stop, ckpt=ckpt)
    assert stopped_at == 1
    model_c, opt_c, sched_c = _fresh(seed=5)
    info = load_checkpoint(ckpt, model=model_c, optimizer=opt_c, scheduler=sched_c)
    rng = np.random.default_rng()
    rng.bit_generator.state = info["data_position"]
    _train(model_c, opt_c, sched_c, 20, info["step"], rng)
    assert all(torch.equal(a, c) for a, c in zip(model_a.parameters(), model_c.parameters()))


def test_train_curve_keeps_the_last_record_of_a_step_and_draws_it(tmp_path):
    import io

    from PIL import Image

    from ahriuwu_core.images.pictures import loss_curve_png, train_curve

    log = tmp_path / "train_log.jsonl"
    assert train_curve(log) == ([], []) and loss_curve_png(log) is None  # nothing logged yet
    # steps 1-3, then a resume from the step-2 checkpoint logs 3 again (its new value wins) and 4
    log.write_text(
        "".join(
            json.dumps({"step": s, "loss": v}) + "\n" for s, v in [(1, 4.0), (2, 3.0), (3, 2.5), (3, 2.0), (4, 1.0)]
        )
        + "\n"
    )
    assert train_curve(log) == ([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0])
    assert train_curve(log, "mse") == ([], [])
    image = Image.open(io.BytesIO(loss_curve_png(log)))
    assert image.format == "PNG" and image.width > 100


def test_weight_average_is_the_bias_corrected_moving_average():
    from ahriuwu_core.training.optim import WeightAverage

    model = nn.Linear(2, 1, bias=False)
    average = WeightAverage(model, decay=0.9)
    seen = []
    for value in (1.0, 2.0, 4.0):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update(model)
        seen.append(value)
    weights = [0.9 ** (len(seen) - 1 - i) for i in range(len(seen))]  # sum_i d^(n-i) p_i / sum_i d^(n-i)
    expected = sum(w * v for w, v in zip(weights, seen)) / sum(weights)
    assert torch.allclose(average.averaged()["weight"], torch.full((1, 2), expected))
    assert average.averaged_state(model)["weight"].dtype == model.weight.dtype
    restored = WeightAverage.from_state(average.state_dict())
    assert torch.equal(restored.averaged()["weight"], average.averaged()["weight"])
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_lr_scale_gives_named_parameters_their_own_rate_under_the_schedule():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    cfg = OptimConfig(lr=1e-3, warmup_steps=0, weight_decay=0.1)
    opt = make_optimizer(model, cfg, {"1.": 10.0})
    scaled = [g for g in opt.param_groups if any(p is model[1].weight for p in g["params"])]
    assert len(scaled) == 1 and scaled[0]["lr"] == pytest.approx(1e-2) and scaled[0]["weight_decay"] == 0.0
    assert len(scaled[0]["params"]) == 2  # the weight and the bias of "1."
    sched = make_scheduler(opt, cfg, total_steps=10)
    for _ in range(5):
        opt.step()
        sched.step()
    rates = sorted(g["lr"] for g in opt.param_groups)
    assert rates[-1] == pytest.approx(10 * rates[0])  # the schedule scales both alike
