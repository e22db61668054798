#!/usr/bin/env python3
"""PyTorch side of `npm run bench -- vit`: the same ViT as lmforge's (optional 3x3 conv stem, patch projection as a p-stride Conv2d, class
token, learned positions, pre-norm blocks with a fused qkv Linear and unmasked softmax attention, exact GELU, final
LayerNorm, linear head), AdamW with decay on matrices and gradient clipping at 1, on Fashion-MNIST batches prepared
outside the timed region. Prints one JSON line: median ms/iter, images/s, median CPU ms/iter (process time over all
threads), peak RSS.

Usage: /usr/bin/python3 bench/vit_torch.py DATA_DIR ITERS THREADS SHAPE_JSON
"""
import gzip
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H, hidden, eps):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, eps=eps)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=eps)
        self.c_fc = nn.Linear(C, hidden)
        self.mlp_proj = nn.Linear(hidden, C)

    def forward(self, x):
        B, T, C = x.shape
        D = C // self.H
        q, k, v = self.c_attn(self.ln_1(x)).split(C, 2)
        q, k, v = (t.view(B, T, self.H, D).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax((q @ k.transpose(-1, -2)) * (D ** -0.5), -1)
        x = x + self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class ViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, p = c["n_embd"], c["patch_size"]
        n = (c["image_size"] // p) ** 2
        hidden = c.get("mlp_hidden", 0) or 4 * C
        eps = c.get("norm_eps", 1e-6)
        cin = c.get("num_channels", 1)
        # The conv stem: a 3x3 stride-1 zero-padded convolution + GELU before the p-stride patch projection.
        self.stem = nn.Conv2d(cin, c.get("stem_channels", 8), 3, padding=1) if c.get("stem") == "conv" else None
        self.proj = nn.Conv2d(c.get("stem_channels", 8) if self.stem is not None else cin, C, p, stride=p)
        self.cls = nn.Parameter(torch.randn(1, 1, C) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, n + 1, C) * 0.02)
        self.blocks = nn.ModuleList([Block(C, c["n_head"], hidden, eps) for _ in range(c["n_layer"])])
        self.ln = nn.LayerNorm(C, eps=eps)
        self.head = nn.Linear(C, c.get("num_labels", 10))

    def forward(self, x):
        if self.stem is not None:
            x = F.gelu(self.stem(x))
        t = self.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(x.shape[0], 1, -1), t], 1) + self.pos
        for b in self.blocks:
            t = b(t)
        return self.head(self.ln(t)[:, 0])


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    return torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).view(-1, 28, 28), torch.frombuffer(bytearray(gzip.open(path.replace("images-idx3", "labels-idx1"), "rb").read()[8:]), dtype=torch.uint8).long()


def main():
    data_dir, iters, threads, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    images, labels = read_idx(f"{data_dir}/train-images-idx3-ubyte.gz")
    x_all = (images.float() / 255 - 0.286) / 0.353
    model = ViT(shape)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": plain, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    B = shape["batch_size"]
    times = []
    cpu_times = []
    loss = 0.0
    for it in range(iters + 2):
        idx = torch.randint(0, x_all.shape[0], (B,))
        # The same augmentation as lmforge's batches (pad 2 + random crop), prepared outside the timed region.
        xb = F.pad(x_all[idx].unsqueeze(1), (2, 2, 2, 2), value=-0.286 / 0.353)
        dy, dx = torch.randint(0, 5, (2,)).tolist()
        xb = xb[:, :, dy:dy + 28, dx:dx + 28].contiguous()
        yb = labels[idx]
        t0 = time.perf_counter()
        c0 = time.process_time()
        out = model(xb)
        l = F.cross_entropy(out, yb)
        opt.zero_grad(set_to_none=True)
        l.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss = l.item()
        if it >= 2:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    times.sort()
    cpu_times.sort()
    ms = times[len(times) // 2] * 1000
    cpu_ms = cpu_times[len(cpu_times) // 2] * 1000
    print(json.dumps({"ms": ms, "tokensPerS": B / (ms / 1000), "cpuMs": cpu_ms, "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "loss": loss}))


if __name__ == "__main__":
    main()
