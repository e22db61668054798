#!/usr/bin/env python3
"""Independent PyTorch scorer for lmforge's evaluation harness (multiple-choice tasks).

Reads a model directory (model.safetensors through the small pure-Python reader below, config.json) and a
requests file written by `lmforge eval --dump-requests FILE` (per item: the untruncated context token ids, each
choice's continuation ids, the choices' lengths in characters, the gold index). For every choice it truncates from
the left as lm-evaluation-harness does -- input = (context + continuation)[-(block_size + 1):][:-1] -- runs its own
GPT forward pass in float64, and sums log-softmax over the continuation's positions. It then picks `acc`
(argmax of the sums) and `acc_norm` (argmax of sum / characters) answers.

Made once to write the fixture test/fixtures/eval/reference.json (run with Debian's python3-torch):
    /usr/bin/python3 test/reference/eval_reference.py MODEL_DIR REQUESTS.json OUT.json [--samples TS.samples.jsonl]
With --samples (the per-sample log of the same `lmforge eval` run) it also prints how far lmforge's numbers are
from this scorer's. CI never runs this script; the test only reads its output.
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # these models are small; one thread is fastest on a shared machine

DTYPES = {"F32": (4, "f"), "F64": (8, "d"), "F16": (2, "e")}


def read_safetensors(path):
    """Minimal safetensors reader: u64 little-endian header length, JSON header, then raw little-endian data."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        size, code = DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        count = (end - start) // size
        values = struct.unpack("<%d%s" % (count, code), raw[base + start : base + end])
        out[name] = torch.tensor(values, dtype=torch.float64).reshape(info["shape"])
    return out


def load_model(model_dir):
    with open(model_dir + "/config.json") as f:
        raw = json.load(f)
    cfg = raw["lmforge"]
    for key, want in (("norm", "layernorm"), ("position", "learned"), ("mlp", "gelu")):
        if cfg[key] != want:
            raise SystemExit("eval_reference.py supports %s=%s only, got %s" % (key, want, cfg[key]))
    p = read_safetensors(model_dir + "/model.safetensors")
    p = {(k if k.startswith(("transformer.", "lm_head.")) else "transformer." + k): v for k, v in p.items()}
    return cfg, p


def linear(x, p, name):
    # Hugging Face Conv1D layout: weight (in, out)
    # as one 2-D matrix product (torch's batched 3-D float64 path is several times slower on CPU)
    w = p[name + ".weight"]
    b = p.get(name + ".bias")
    x2 = x.reshape(-1, x.shape[-1])
    y = torch.addmm(b, x2, w) if b is not None else x2 @ w
    return y.reshape(*x.shape[:-1], w.shape[1])


def forward(cfg, p, idx, last):
    """Logits (B, last, V) of the last `last` positions for token ids idx (B, T)."""
    B, T = idx.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    D = C // H
    eps = cfg["norm_eps"]

    def ln(x, name):
        return F.layer_norm(x, (C,), p[name + ".weight"], p.get(name + ".bias"), eps)

    x = p["transformer.wte.weight"][idx] + p["transformer.wpe.weight"][:T][None]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(cfg["n_layer"]):
        h = "transformer.h.%d." % l
        qkv = linear(ln(x, h + "ln_1"), p, h + "attn.c_attn")
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + linear(y, p, h + "attn.c_proj")
        m = linear(ln(x, h + "ln_2"), p, h + "mlp.c_fc")
        m = F.gelu(m, approximate="tanh" if cfg["activation"] == "gelu_tanh" else "none")
        x = x + linear(m, p, h + "mlp.c_proj")
    x = ln(x[:, T - last :], "transformer.ln_f")
    head = p.get("lm_head.weight", p["transformer.wte.weight"])  # (V, C)
    return x @ head.T


def score_item(cfg, p, item):
    L = cfg["block_size"]
    inputs, targets = [], []
    for cont in item["continuations"]:
        full = item["context"] + cont
        inp = full[-(L + 1) :][:-1]
        n = min(len(cont), len(inp))
        inputs.append(inp)
        targets.append(full[len(full) - n :])
    lls = [None] * len(inputs)
    # Identical inputs (all choices of one-token continuations, as MMLU's) run once; then choices whose inputs
    # have equal length run as one batch.
    unique = {}
    for i, (inp, tgt) in enumerate(zip(inputs, targets)):
        unique.setdefault((tuple(inp), len(tgt)), []).append(i)
    by_shape = {}
    for key in unique:
        by_shape.setdefault((len(key[0]), key[1]), []).append(key)
    for (T, n), keys in by_shape.items():
        idx = torch.tensor([list(k[0]) for k in keys], dtype=torch.long)
        with torch.no_grad():
            logp = forward(cfg, p, idx, n).log_softmax(-1)  # (B, n, V)
        for b, key in enumerate(keys):
            for i in unique[key]:
                tgt = torch.tensor(targets[i], dtype=torch.long)
                lls[i] = float(logp[b, torch.arange(n), tgt].sum())
    pred = max(range(len(lls)), key=lambda i: (lls[i], -i))
    norm = [ll / c for ll, c in zip(lls, item["choice_chars"])]
    pred_norm = max(range(len(norm)), key=lambda i: (norm[i], -i))
    correct = (lambda i: item["labels"][i]) if "labels" in item else (lambda i: int(i == item["gold"]))
    return {"task": item["task"], "where": item["where"], "loglikelihoods": lls, "pred": pred, "pred_norm": pred_norm, "acc": correct(pred), "acc_norm": correct(pred_norm)}


def main():
    args = sys.argv[1:]
    samples = None
    if "--samples" in args:
        k = args.index("--samples")
        samples = args[k + 1]
        args = args[:k] + args[k + 2 :]
    model_dir, requests_path, out_path = args
    cfg, p = load_model(model_dir)
    with open(requests_path) as f:
        requests = json.load(f)
    results = []
    for i, item in enumerate(requests["items"]):
        results.append(score_item(cfg, p, item))
        if (i + 1) % 500 == 0:
            print("scored %d/%d" % (i + 1, len(requests["items"])), file=sys.stderr)
    tasks = sorted({r["task"] for r in results})
    summary = {t: {m: sum(r[m] for r in results if r["task"] == t) / sum(1 for r in results if r["task"] == t) for m in ("acc", "acc_norm")} for t in tasks}
    with open(out_path, "w") as f:
        json.dump({"model": model_dir, "block_size": cfg["block_size"], "summary": summary, "items": results}, f)
        f.write("\n")
    print(json.dumps(summary))
    if samples:
        with open(samples) as f:
            ts = [json.loads(line) for line in f if line.strip()]
        ts = [s for s in ts if "loglikelihoods" in s and "pred" in s]
        if len(ts) != len(results):
            raise SystemExit("samples file has %d multiple-choice items, requests %d" % (len(ts), len(results)))
        max_diff = max(abs(a - b) for s, r in zip(ts, results) for a, b in zip(s["loglikelihoods"], r["loglikelihoods"]))
        same = sum(1 for s, r in zip(ts, results) if s["pred"] == r["pred"])
        same_norm = sum(1 for s, r in zip(ts, results) if s["pred_norm"] == r["pred_norm"])
        print("items %d | max |loglik diff| %.3g | same acc answer %d/%d | same acc_norm answer %d/%d" % (len(ts), max_diff, same, len(ts), same_norm, len(ts)))
        for t in tasks:
            mine = [r for r in results if r["task"] == t]
            theirs = [s for s in ts if s["task"] == t]
            for m in ("acc", "acc_norm"):
                if all(m in s for s in theirs):
                    print("%s: %s lmforge %.4f reference %.4f" % (t, m, sum(s[m] for s in theirs) / len(theirs), sum(r[m] for r in mine) / len(mine)))


if __name__ == "__main__":
    main()
