#!/usr/bin/env python3
"""Where should a LoRA rank budget go? An oracle over a full fine-tuning run: each adapted Linear's update
ΔW = W_full − W_base replaced by its best rank-k approximation *in function space* (Σ^{-1/2}·trunc_k(Σ^{1/2}·ΔW), Σ the
covariance of the layer's input on validation windows under the base: the rank-k piece that moves the layer's output
most on real inputs), every other weight left at the base but the layer norms' gains (trained in full beside LoRA), and
the loss of that model on the validation windows. A per-layer rank allocation whose oracle keeps more of full
fine-tuning's improvement is a better place for the same parameters; bench/lora.ts's fourth sweep tests that on LoRA
itself. Only reads files: the base and full runs' model.safetensors and the val token file (lmforge's layout).

Run with Debian's python3-torch, after `npm run bench -- lora` has cached its runs:
  /usr/bin/python3 dev/lora-rank-oracle.py [--windows=256] [runs/bench-lora/wide/full-s1337-lr0.001 …]
Allocations are given per layer as r(h.0),r(h.1),r(h.2) on c_fc and mlp.c_proj; edit ALLOCATIONS below to try others.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

torch.set_grad_enabled(False)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BASE = os.path.join(ROOT, "runs/bench-base-char-wide")
VAL = os.path.join(ROOT, "data/bench-instructions-char/val.bin")
ALLOCATIONS = [(8, 8, 8), (9, 9, 9), (10, 9, 8), (8, 9, 10), (10, 10, 7), (7, 10, 10), (11, 8, 8), (8, 8, 11), (11, 10, 6)]


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (path, k, v["dtype"])
        s, e = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(body[s:e]), dtype=torch.float32).reshape(v["shape"]).double()
    return out


def read_tokens(path):
    """lmforge's token file: 8-byte magic LMFTOKEN, u32 version, u32 dtype (1 = uint16, 2 = uint32), u64 count, ids."""
    raw = open(path, "rb").read()
    assert raw[:8] == b"LMFTOKEN", path
    _, dtype, count = struct.unpack("<IIQ", raw[8:24])
    return torch.from_numpy(np.frombuffer(raw[24:], dtype=np.uint16 if dtype == 1 else np.uint32)[:count].astype(np.int64))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    windows = int(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--windows=")), 256))
    fulls_dirs = args or [os.path.join(ROOT, "runs/bench-lora/wide/full-s%s-lr0.001" % s) for s in ("1337", "2")]
    cfg = json.load(open(os.path.join(BASE, "config.json")))
    C, H, L, V, T = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["vocab_size"], cfg["n_ctx"]
    assert cfg["activation_function"] == "gelu" and not cfg["lmforge"]["bias"], "the oracle's forward is GPT-2 with exact GELU and no biases"
    w = read_safetensors(os.path.join(BASE, "model.safetensors"))
    fulls = [read_safetensors(os.path.join(d, "model.safetensors")) for d in fulls_dirs]
    ids = read_tokens(VAL)
    stride = (len(ids) - 1) // T // windows
    idx = torch.stack([ids[i * stride * T : i * stride * T + T] for i in range(windows)])  # (B, T), spread over the split
    inputs = {}

    def forward(W, record=False):
        """GPT-2 forward (tied head, no biases) and the mean next-token loss; with record, each Linear's input."""
        def linear(x, key):
            if record:
                inputs.setdefault(key, []).append(x.reshape(-1, x.shape[-1]))
            return x @ W[key + ".weight"]  # (in, out), Conv1D's layout

        def ln(x, name):
            return torch.nn.functional.layer_norm(x, (C,), W[name + ".weight"], None, cfg["layer_norm_epsilon"])

        B = idx.shape[0]
        x = W["transformer.wte.weight"][idx] + W["transformer.wpe.weight"][:T]
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        for l in range(L):
            h = "transformer.h.%d." % l
            q, k, v = [t.reshape(B, T, H, C // H).transpose(1, 2) for t in linear(ln(x, h + "ln_1"), h + "attn.c_attn").split(C, dim=2)]
            att = ((q @ k.transpose(-2, -1)) / math.sqrt(C // H)).masked_fill(~mask, float("-inf")).softmax(-1)
            x = x + linear((att @ v).transpose(1, 2).reshape(B, T, C), h + "attn.c_proj")
            x = x + linear(torch.nn.functional.gelu(linear(ln(x, h + "ln_2"), h + "mlp.c_fc")), h + "mlp.c_proj")
        logits = ln(x, "transformer.ln_f") @ W["transformer.wte.weight"].T
        return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1)).item()

    base_loss = forward(w, record=True)
    full_loss = [forward(f) for f in fulls]
    root_cov, inv_root_cov = {}, {}
    for key, xs in inputs.items():
        X = torch.cat(xs)
        e, U = torch.linalg.eigh(X.T @ X / X.shape[0])
        e = e.clamp(min=1e-8)
        root_cov[key], inv_root_cov[key] = U @ torch.diag(e.sqrt()) @ U.T, U @ torch.diag(1 / e.sqrt()) @ U.T
    print("%d windows of %d: base loss %.4f, full fine-tuning %s" % (windows, T, base_loss, " / ".join("%.4f" % x for x in full_loss)))

    def oracle(ranks, f):
        W = dict(w)
        for k in w:
            if ".ln_" in k or "ln_f" in k:
                W[k] = f[k]
        for key, r in ranks.items():
            U, s, Vt = torch.linalg.svd(root_cov[key] @ (f[key + ".weight"] - w[key + ".weight"]), full_matrices=False)
            W[key + ".weight"] = w[key + ".weight"] + inv_root_cov[key] @ (U[:, :r] * s[:r]) @ Vt[:r]
        return forward(W)

    for alloc in ALLOCATIONS:
        ranks = {"transformer.h.%d.mlp.%s" % (l, m): alloc[l] for l in range(L) for m in ("c_fc", "c_proj")}
        params = sum(sum(w[k + ".weight"].shape) * r for k, r in ranks.items())
        losses = [oracle(ranks, f) for f in fulls]
        shares = [(base_loss - x) / (base_loss - y) for x, y in zip(losses, full_loss)]
        print("ranks %-12s %7d adapter parameters: oracle loss %s, share of full fine-tuning's improvement %s" % (
            ",".join(map(str, alloc)), params, " / ".join("%.4f" % x for x in losses), " / ".join("%.3f" % x for x in shares)))


if __name__ == "__main__":
    main()
