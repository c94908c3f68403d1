#!/usr/bin/env bash
# Dynamics GPU checks (prepared for a lent CUDA device; ~3-5 min on one H100/H200):
#  1. seed-preset training throughput + MFU in bf16 (tokens/s, achieved TFLOP/s vs peak)
#  2. K=4 rollout FPS at 256x256 (seed latents 256 tokens x 32 dims, KV-cached, batch 1 and 16)
#  3. bench/dynamics.py --quick on CUDA (per-preset throughput/peak memory, K4 speed-up, KV cost ratio)
# Usage: bash bench/gpu.sh [PEAK_TFLOPS]   (default 989 = H100/H200 dense bf16)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
PEAK=${1:-989}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" - "$PEAK" <<'PYEOF'
import sys, time, torch
sys.path.insert(0, ".")
from ahriuwu_core.dynamics.config import DynamicsConfig
from ahriuwu_core.dynamics.model import WorldModel
from ahriuwu_core.dynamics.objective import shortcut_forcing_loss
from ahriuwu_core.dynamics.sampler import rollout
from ahriuwu_core.presets import get_preset
from ahriuwu_core.training.precision import autocast_context
peak = float(sys.argv[1]) * 1e12
dev = torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = True
pre = get_preset("seed").dynamics
cfg = DynamicsConfig(**{**pre.model, "num_tokens": 256, "token_dim": 32})
torch.manual_seed(0)
model = WorldModel(cfg).to(dev)
params = model.num_params()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
B, T = 16, 32
clean = torch.rand(B, T, 256, 32, device=dev) * 2 - 1
acts = torch.zeros(B, T, 2, dtype=torch.long, device=dev)
has = torch.ones(B, T, dtype=torch.bool, device=dev)
obj = pre.objective()
def step():
    with autocast_context(dev):
        loss, st = shortcut_forcing_loss(model, clean, acts, has, obj)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return st
for _ in range(3): step()
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
n = 10; t = time.perf_counter(); fb = 0.0
for _ in range(n):
    st = step(); fb += st["bootstrap_fraction"]
torch.cuda.synchronize(); dt = (time.perf_counter() - t) / n
tokens = B * T * cfg.tokens_per_frame
# FLOPs: 6*P per token for the student (fwd+bwd) + 2*P per token for each of the 2 teacher passes on the
# bootstrap fraction; attention FLOPs ignored (small at 266 tokens/frame) -> MFU slightly underestimated.
flops = tokens * params * (6 + 4 * fb / n)
print(f"seed_params={params} batch={B}x{T} tokens_per_frame={cfg.tokens_per_frame}")
print(f"seed_train_tokens_per_s={tokens/dt:.0f} step_s={dt:.3f} tflops={flops/dt/1e12:.1f} mfu={flops/dt/peak:.3f} "
      f"peak_mem_gib={torch.cuda.max_memory_allocated()/2**30:.1f}")
model.eval()
for b in (1, 16):
    ctx = torch.rand(b, 16, 256, 32, device=dev) * 2 - 1
    a = torch.zeros(b, 16 + 64, 2, dtype=torch.long, device=dev)
    with autocast_context(dev):
        rollout(model, ctx, a, None, 4, sampling_steps=4)
        torch.cuda.synchronize(); t = time.perf_counter()
        rollout(model, ctx, a, None, 64, sampling_steps=4)
        torch.cuda.synchronize(); dt = time.perf_counter() - t
    print(f"rollout_256x256_k4 batch={b} fps={64*b/dt:.1f} (frames/s incl. context prefill, ctx 16, 64 frames)")
PYEOF
"$PY" bench/dynamics.py --quick --device cuda
