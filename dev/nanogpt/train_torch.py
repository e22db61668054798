#!/usr/bin/env python3
"""nanoGPT's Shakespeare-char CPU recipe in PyTorch (same model, init, AdamW groups, schedule, clipping, sampling,
eval), reading lmforge's token files, to see the seed-to-seed spread of the final val loss that lmforge's runs are
compared with. Usage: python3 dev/nanogpt/train_torch.py DATA_DIR SEED [BIAS 0|1]"""
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

data_dir, seed = sys.argv[1], int(sys.argv[2])
bias = len(sys.argv) > 3 and sys.argv[3] == "1"
torch.manual_seed(seed)
torch.set_num_threads(1)


def load(path):
    raw = np.fromfile(path, dtype=np.uint8)
    return torch.from_numpy(raw[24:].view(np.uint16).astype(np.int64))


train, val = load(f"{data_dir}/train.bin"), load(f"{data_dir}/val.bin")
B, T, L, H, C, V = 12, 64, 4, 4, 128, 65


class LN(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.bias = nn.Parameter(torch.zeros(C)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, (C,), self.weight, self.bias, 1e-5)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = LN(), LN()
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C, bias=bias), nn.Linear(C, C, bias=bias)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C, bias=bias), nn.Linear(4 * C, C, bias=bias)
        self.register_buffer("mask", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.h = nn.ModuleList([Block() for _ in range(L)])
        self.ln_f = LN()
        self.apply(self._init)
        for n, p in self.named_parameters():
            if n.endswith("c_proj.weight") or n.endswith("mlp_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))

    def _init(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx, tgt):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for blk in self.h:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, V), tgt.view(-1))


def batch(d):
    ix = torch.randint(len(d) - T, (B,))
    return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + 1 + T] for i in ix])


model = GPT()
params = [p for p in model.parameters()]
opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))


def lr_at(it):
    if it < 100:
        return 1e-3 * (it + 1) / 101
    if it > 2000:
        return 1e-4
    r = (it - 100) / 1900
    return 1e-4 + 0.5 * (1 + math.cos(math.pi * r)) * (1e-3 - 1e-4)


t0 = time.time()
for it in range(2001):
    if it % 500 == 0:
        model.eval()
        with torch.no_grad():
            losses = {s: sum(model(*batch(d)).item() for _ in range(200)) / 200 for s, d in (("train", train), ("val", val))}
        model.train()
        print(f"step {it}: train {losses['train']:.4f} val {losses['val']:.4f} ({time.time() - t0:.0f}s)", flush=True)
    if it == 2000:
        break
    for g in opt.param_groups:
        g["lr"] = lr_at(it)
    loss = model(*batch(train))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
