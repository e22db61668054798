#!/usr/bin/env python3
"""Independent PyTorch implementation of lmforge's GPT, used once to produce the golden parity fixtures in
test/fixtures/gpt-*.json (logits, loss, every parameter gradient at step 0, and the losses of 10 AdamW steps).

Run with Debian's python3-torch:  /usr/bin/python3 test/reference/gpt_reference.py
CI never runs this script; it only reads the fixtures. Weights are drawn here (torch.manual_seed) and stored in
the fixture, so both implementations start from the same parameters.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)  # fixtures in float64; lmforge compares in float32 within tolerance

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures")


def init_params(cfg, gen):
    """GPT-2 initialisation, Hugging Face GPT2LMHeadModel names, Conv1D (in, out) weight layout."""
    C, V, L = cfg["n_embd"], cfg["vocab_size"], cfg["n_layer"]
    hidden = cfg["mlp_hidden"]
    fc_out = 2 * hidden if cfg["mlp"] == "swiglu" else hidden
    p = {}

    def normal(shape, std):
        return torch.randn(*shape, generator=gen) * std

    p["transformer.wte.weight"] = normal((V, C), 0.02)
    if cfg["position"] == "learned":
        p["transformer.wpe.weight"] = normal((cfg["block_size"], C), 0.02)
    proj_std = 0.02 / math.sqrt(2 * L)
    for l in range(L):
        h = f"transformer.h.{l}."
        for ln in ("ln_1", "ln_2"):
            # Non-trivial norm weights so their gradients are exercised.
            p[h + ln + ".weight"] = 1 + normal((C,), 0.1)
            if cfg["norm"] == "layernorm" and cfg["bias"]:
                p[h + ln + ".bias"] = normal((C,), 0.1)
        p[h + "attn.c_attn.weight"] = normal((C, 3 * C), 0.02 * 10)
        p[h + "attn.c_proj.weight"] = normal((C, C), proj_std * 10)
        p[h + "mlp.c_fc.weight"] = normal((C, fc_out), 0.02 * 10)
        p[h + "mlp.c_proj.weight"] = normal((hidden, C), proj_std * 10)
        if cfg["bias"]:
            p[h + "attn.c_attn.bias"] = normal((3 * C,), 0.1)
            p[h + "attn.c_proj.bias"] = normal((C,), 0.1)
            p[h + "mlp.c_fc.bias"] = normal((fc_out,), 0.1)
            p[h + "mlp.c_proj.bias"] = normal((C,), 0.1)
    p["transformer.ln_f.weight"] = 1 + normal((C,), 0.1)
    if cfg["norm"] == "layernorm" and cfg["bias"]:
        p["transformer.ln_f.bias"] = normal((C,), 0.1)
    if not cfg["tie_embeddings"]:
        p["lm_head.weight"] = normal((V, C), 0.02 * 10)
    return p


def norm(cfg, x, w, b):
    if cfg["norm"] == "rmsnorm":
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg["norm_eps"]) * w
    return F.layer_norm(x, (x.shape[-1],), w, b, cfg["norm_eps"])


def rope(x, base):
    # x (B, T, H, D), rotate-half layout
    B, T, H, D = x.shape
    half = D // 2
    inv = base ** (-2 * torch.arange(half, dtype=torch.float64) / D)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]  # (T, half)
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def forward(cfg, p, idx, targets):
    B, T = idx.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    D = C // H
    x = p["transformer.wte.weight"][idx]
    if cfg["position"] == "learned":
        x = x + p["transformer.wpe.weight"][:T]
    mask = torch.ones(T, T).tril().bool()
    for l in range(cfg["n_layer"]):
        h = f"transformer.h.{l}."
        a = norm(cfg, x, p[h + "ln_1.weight"], p.get(h + "ln_1.bias"))
        qkv = a @ p[h + "attn.c_attn.weight"]
        if cfg["bias"]:
            qkv = qkv + p[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.reshape(B, T, H, D) for t in (q, k, v))
        if cfg["position"] == "rope":
            q, k = rope(q, cfg["rope_base"]), rope(k, cfg["rope_base"])
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        y = y @ p[h + "attn.c_proj.weight"]
        if cfg["bias"]:
            y = y + p[h + "attn.c_proj.bias"]
        x = x + y
        m = norm(cfg, x, p[h + "ln_2.weight"], p.get(h + "ln_2.bias"))
        m = m @ p[h + "mlp.c_fc.weight"]
        if cfg["bias"]:
            m = m + p[h + "mlp.c_fc.bias"]
        if cfg["mlp"] == "swiglu":
            gate, up = m.split(cfg["mlp_hidden"], dim=-1)
            m = F.silu(gate) * up
        else:
            m = F.gelu(m, approximate="tanh" if cfg["activation"] == "gelu_tanh" else "none")
        m = m @ p[h + "mlp.c_proj.weight"]
        if cfg["bias"]:
            m = m + p[h + "mlp.c_proj.bias"]
        x = x + m
    x = norm(cfg, x, p["transformer.ln_f.weight"], p.get("transformer.ln_f.bias"))
    head = p["transformer.wte.weight"] if cfg["tie_embeddings"] else p["lm_head.weight"]
    logits = x @ head.t()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)
    return logits, loss


def make_fixture(name, cfg, seed):
    gen = torch.Generator().manual_seed(seed)
    params = {k: v.clone().requires_grad_(True) for k, v in init_params(cfg, gen).items()}
    B, T, V = 2, cfg["block_size"], cfg["vocab_size"]
    batches = [
        (torch.randint(0, V, (B, T), generator=gen), torch.randint(0, V, (B, T), generator=gen))
        for _ in range(3)
    ]
    batches[0][1][0, 1] = -1  # one ignored target
    fixture = {
        "config": cfg,
        "params": {k: {"shape": list(v.shape), "data": v.detach().flatten().tolist()} for k, v in params.items()},
        "batches": [{"idx": i.flatten().tolist(), "targets": t.flatten().tolist(), "shape": [B, T]} for i, t in batches],
    }
    logits, loss = forward(cfg, params, *batches[0])
    loss.backward()
    fixture["logits"] = logits.detach().flatten().tolist()
    fixture["loss"] = loss.item()
    fixture["grads"] = {k: v.grad.flatten().tolist() for k, v in params.items()}

    # 10 AdamW steps (decay on ≥2-D parameters only, as nanoGPT), gradient clipping at 1.0, cycling the batches.
    opt_cfg = {"lr": 1e-2, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1, "clip": 1.0, "steps": 10}
    for v in params.values():
        v.grad = None
    decay = [v for v in params.values() if v.dim() >= 2]
    no_decay = [v for v in params.values() if v.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": opt_cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=opt_cfg["lr"], betas=tuple(opt_cfg["betas"]), eps=opt_cfg["eps"],
    )
    losses = []
    for step in range(opt_cfg["steps"]):
        idx, tgt = batches[step % len(batches)]
        _, loss = forward(cfg, params, idx, tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), opt_cfg["clip"])
        opt.step()
        losses.append(loss.item())
    fixture["adamw"] = opt_cfg
    fixture["adamw_losses"] = losses
    path = os.path.join(OUT, f"gpt-{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(fixture, f)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}: loss {fixture['loss']:.6f}, adamw losses {losses[0]:.4f} → {losses[-1]:.4f}")


BASE = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=0.0, norm_eps=1e-5, rope_base=10000.0)

if __name__ == "__main__":
    make_fixture("gpt2", dict(BASE, bias=True, activation="gelu", norm="layernorm", mlp="gelu", mlp_hidden=32,
                              position="learned", tie_embeddings=True), seed=1)
    make_fixture("gpt2-tanh", dict(BASE, bias=True, activation="gelu_tanh", norm="layernorm", mlp="gelu", mlp_hidden=32,
                                   position="learned", tie_embeddings=True), seed=2)
    make_fixture("modern", dict(BASE, bias=False, activation="gelu", norm="rmsnorm", mlp="swiglu", mlp_hidden=16,
                                position="rope", tie_embeddings=False, norm_eps=1e-6), seed=3)
