# PyTorch side of bench/kernels.ts: the eager PyTorch equivalent of each native kernel on the same shape, timed
# per repetition (milliseconds). Not used at runtime, only for side-by-side comparison.
# Usage: python3 kernels_torch.py THREADS REPS CASE [CASE ...]  with CASE = name:d1,d2,...
# → one JSON line per case on stdout: {"case": CASE, "ms": [wall], "cpuMs": [process CPU, all threads], "torch": version}.
import json
import resource
import sys
import time

import torch
import torch.nn.functional as F

threads, reps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)


ops = torch.ops.aten


def cpu_seconds():
    """User + system CPU of the process from getrusage, the same clock as Node's process.cpuUsage()."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def setup(name, dims):
    """Returns a zero-argument function doing one repetition of the case. Outputs are preallocated and written
    through ATen's out= variants, as lmforge's kernels write into caller-owned arrays (allocating a fresh 50 MB
    output per call costs PyTorch more page faults than compute here)."""
    if name in ('gelu', 'gelu_tanh'):
        (n,) = dims
        x, y = torch.randn(n), torch.empty(n)
        approximate = 'tanh' if name == 'gelu_tanh' else 'none'
        return lambda: ops.gelu.out(x, approximate=approximate, out=y)
    if name == 'add_row':
        rows, cols = dims
        a, b, out = torch.randn(rows, cols), torch.randn(cols), torch.empty(rows, cols)
        return lambda: torch.add(a, b, out=out)
    if name == 'softmax':
        rows, cols = dims
        x, y = torch.randn(rows, cols), torch.empty(rows, cols)
        return lambda: ops._softmax.out(x, -1, False, out=y)
    if name == 'softmax_bwd':
        rows, cols = dims
        y, gy, gx = torch.softmax(torch.randn(rows, cols), -1), torch.randn(rows, cols), torch.empty(rows, cols)
        return lambda: ops._softmax_backward_data.out(gy, y, -1, torch.float32, grad_input=gx)
    if name in ('layernorm', 'layernorm_bwd'):
        rows, C = dims
        x, w, b, gy = torch.randn(rows, C), torch.randn(C), torch.randn(C), torch.randn(rows, C)
        y, mean, rstd = torch.native_layer_norm(x, (C,), w, b, 1e-5)
        if name == 'layernorm':
            m, r = torch.empty_like(mean), torch.empty_like(rstd)
            return lambda: ops.native_layer_norm.out(x, [C], w, b, 1e-5, out0=y, out1=m, out2=r)
        gx, gw, gb = torch.empty_like(x), torch.empty(C), torch.empty(C)
        return lambda: ops.native_layer_norm_backward.out(gy, x, [C], mean, rstd, w, b, [True, True, True],
                                                          out0=gx, out1=gw, out2=gb)
    if name in ('ce', 'ce_bwd'):
        N, V = dims
        logits = torch.randn(N, V) * 2
        t = torch.randint(0, V, (N,))
        logp, loss, total = torch.empty(N, V), torch.empty(N), torch.empty(())
        ops._log_softmax.out(logits, -1, False, out=logp)
        if name == 'ce':  # cross_entropy = log_softmax then nll_loss (reduction 'none')
            def fwd():
                ops._log_softmax.out(logits, -1, False, out=logp)
                return ops.nll_loss_forward.output(logp, t, None, 0, -100, output=loss, total_weight=total)
            return fwd
        g, gnll, glogits = torch.ones(N), torch.empty(N, V), torch.empty(N, V)
        def bwd():
            ops.nll_loss_backward.grad_input(g, logp, t, None, 0, -100, total, grad_input=gnll)
            return ops._log_softmax_backward_data.out(gnll, logp, -1, torch.float32, out=glogits)
        return bwd
    if name == 'adamw':  # torch.optim.AdamW's own step (single-tensor path; there is no fused CPU AdamW in 1.13)
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
            c0, t0 = cpu_seconds(), time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((cpu_seconds() - c0) * 1e3)
        print(json.dumps({'case': case, 'ms': times, 'cpuMs': cpu, 'torch': torch.__version__}), flush=True)
