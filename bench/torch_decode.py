#!/usr/bin/env python3
"""PyTorch side of bench/decode.ts: the GPT of bench/torch_gpt.py decoding greedily with a KV cache (past keys and
values concatenated per layer, as Hugging Face's GPT-2 does), batch 1, under no_grad. Prints one JSON line: prefill
ms for the prompt, median ms per new token, tokens/s and peak RSS.
Usage: python3 bench/torch_decode.py CASE PROMPT NEW THREADS"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CASES = {
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=256, vocab_size=65),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304),
}


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["n_embd"]
        self.h = c["n_head"]
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x, past):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        S = k.shape[2]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if T > 1:  # causal mask over the new positions (they sit at the end of the S keys)
            mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)
            att = att.masked_fill(~mask, float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)))), (k, v)


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["block_size"], c["n_embd"])
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        self.ln_f = nn.LayerNorm(c["n_embd"])

    def forward(self, idx, pos, pasts):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(pos, pos + T))
        new = []
        for b, p in zip(self.blocks, pasts):
            x, kv = b(x, p)
            new.append(kv)
        return self.ln_f(x[:, -1:]) @ self.wte.weight.t(), new


def main():
    name, prompt, new, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    c = CASES[name]
    model = GPT(c).eval()
    idx = torch.randint(0, c["vocab_size"], (1, prompt))
    with torch.no_grad():
        for _ in range(2):  # warm-up, then the timed run
            t0 = time.perf_counter()
            logits, pasts = model(idx, 0, [None] * c["n_layer"])
            prefill = (time.perf_counter() - t0) * 1000
            times = []
            for i in range(new):
                tok = logits[0, -1].argmax().view(1, 1)
                t0 = time.perf_counter()
                logits, pasts = model(tok, prompt + i, pasts)
                times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    ms = times[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"prefillMs": prefill, "ms": ms, "tokensPerS": 1000 / ms, "peakRssMiB": rss}))


if __name__ == "__main__":
    main()
