# PyTorch side of bench/attention.ts: eager "manual" causal attention (q·kᵀ·scale, masked_fill −inf, softmax, ·v)
# forward + backward of a random upstream gradient, timed per repetition. Not used at runtime, only for comparison.
# Usage: python3 attention_torch.py THREADS REPS B,H,T,D [B,H,T,D ...]   → one JSON line per shape on stdout.
import json
import math
import sys
import time

import torch

threads, reps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
for shape in sys.argv[3:]:
    B, H, T, D = (int(x) for x in shape.split(','))
    q, k, v = (torch.randn(B, H, T, D, requires_grad=True) for _ in range(3))
    g = torch.randn(B, H, T, D)
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scale = 1.0 / math.sqrt(D)

    def step():
        att = (q @ k.transpose(-2, -1)) * scale
        att = att.masked_fill(causal, float('-inf'))
        att = torch.softmax(att, dim=-1)
        y = att @ v
        y.backward(g)
        q.grad = k.grad = v.grad = None

    step()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({'shape': [B, H, T, D], 'ms': times, 'torch': torch.__version__}), flush=True)
