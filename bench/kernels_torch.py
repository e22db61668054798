# PyTorch side of bench/kernels.ts: the eager PyTorch equivalent of each native kernel on the same shape, timed
# per repetition (milliseconds). Not used at runtime, only for side-by-side comparison.
# Usage: python3 kernels_torch.py THREADS REPS CASE [CASE ...]  with CASE = name:d1,d2,...
# → one JSON line per case on stdout: {"case": CASE, "ms": [wall], "cpuMs": [process CPU, all threads], "torch": version}.
import json
import sys
import time

import torch
import torch.nn.functional as F

threads, reps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)


def setup(name, dims):
    """Returns a zero-argument function doing one repetition of the case."""
    if name == 'gelu':
        (n,) = dims
        x = torch.randn(n)
        return lambda: F.gelu(x)
    if name == 'gelu_tanh':
        (n,) = dims
        x = torch.randn(n)
        return lambda: F.gelu(x, approximate='tanh')
    if name == 'add_row':
        rows, cols = dims
        a, b, out = torch.randn(rows, cols), torch.randn(cols), torch.empty(rows, cols)
        return lambda: torch.add(a, b, out=out)
    if name == 'softmax':
        rows, cols = dims
        x = torch.randn(rows, cols)
        return lambda: torch.softmax(x, -1)
    if name == 'softmax_bwd':
        rows, cols = dims
        y, gy = torch.softmax(torch.randn(rows, cols), -1), torch.randn(rows, cols)
        return lambda: torch.ops.aten._softmax_backward_data(gy, y, -1, torch.float32)
    if name in ('layernorm', 'layernorm_bwd'):
        rows, C = dims
        x, w, b, gy = torch.randn(rows, C), torch.randn(C), torch.randn(C), torch.randn(rows, C)
        if name == 'layernorm':
            return lambda: F.layer_norm(x, (C,), w, b, 1e-5)
        _, mean, rstd = torch.native_layer_norm(x, (C,), w, b, 1e-5)
        return lambda: torch.ops.aten.native_layer_norm_backward(gy, x, [C], mean, rstd, w, b, [True, True, True])
    if name in ('ce', 'ce_bwd'):
        N, V = dims
        logits = torch.randn(N, V) * 2
        t = torch.randint(0, V, (N,))
        if name == 'ce':
            return lambda: F.cross_entropy(logits, t, reduction='none')
        # Backward of the same op: log-softmax backward through nll_loss backward, from saved log-probs.
        logp = torch.log_softmax(logits, -1)
        g = torch.ones(N)
        def bwd():
            gl = torch.ops.aten.nll_loss_backward(g, logp, t, None, 0, -100, torch.tensor(0.0))
            return torch.ops.aten._log_softmax_backward_data(gl, logp, -1, torch.float32)
        return bwd
    if name == 'adamw':
        (n,) = dims
        p = torch.nn.Parameter(torch.randn(n) * 0.02)
        p.grad = torch.randn(n) * 1e-3
        opt = torch.optim.AdamW([p], lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
        return opt.step
    raise SystemExit(f'kernels_torch.py: unknown case {name}')


with torch.no_grad():
    for case in sys.argv[3:]:
        name, dims = case.split(':')
        fn = setup(name, [int(d) for d in dims.split(',')])
        fn()  # warm-up
        times, cpu = [], []
        for _ in range(reps):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
        print(json.dumps({'case': case, 'ms': times, 'cpuMs': cpu, 'torch': torch.__version__}), flush=True)
