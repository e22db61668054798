#!/usr/bin/env python3
"""Independent PyTorch implementation of a ViT classifier in Hugging Face's ViTForImageClassification layout (separate
query/key/value, torch.nn.Linear (out, in) weights, a Conv2d patch projection), used once to write the golden fixture
test/fixtures/vit-tiny.json: images, labels, the weights (HF names and layout), logits, loss, every gradient at step 0
(HF layout) and the losses of 5 AdamW steps. lmforge loads the weights through its HF-layout reader (vit-io.ts), so
the fixture checks the model and the weight mapping together.

Run with Debian's python3-torch:  /usr/bin/python3 test/reference/vit_reference.py
"""
import json
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "vit-tiny.json")

CFG = dict(image_size=8, num_channels=2, patch_size=4, n_layer=2, n_head=2, n_embd=8, mlp_hidden=12, num_labels=3, norm_eps=1e-6)
B = 3


def init(gen):
    C, H, K, Cin, p = CFG["n_embd"], CFG["mlp_hidden"], CFG["num_labels"], CFG["num_channels"], CFG["patch_size"]
    T = (CFG["image_size"] // p) ** 2 + 1
    r = lambda *s, std=0.3: torch.randn(*s, generator=gen) * std
    w = {
        "vit.embeddings.cls_token": r(1, 1, C),
        "vit.embeddings.position_embeddings": r(1, T, C),
        "vit.embeddings.patch_embeddings.projection.weight": r(C, Cin, p, p),
        "vit.embeddings.patch_embeddings.projection.bias": r(C, std=0.1),
        "vit.layernorm.weight": 1 + r(C, std=0.1),
        "vit.layernorm.bias": r(C, std=0.1),
        "classifier.weight": r(K, C),
        "classifier.bias": r(K, std=0.1),
    }
    for l in range(CFG["n_layer"]):
        h = f"vit.encoder.layer.{l}."
        for n in ("layernorm_before", "layernorm_after"):
            w[h + n + ".weight"] = 1 + r(C, std=0.1)
            w[h + n + ".bias"] = r(C, std=0.1)
        for n in ("query", "key", "value"):
            w[h + f"attention.attention.{n}.weight"] = r(C, C)
            w[h + f"attention.attention.{n}.bias"] = r(C, std=0.1)
        w[h + "attention.output.dense.weight"] = r(C, C)
        w[h + "attention.output.dense.bias"] = r(C, std=0.1)
        w[h + "intermediate.dense.weight"] = r(H, C)
        w[h + "intermediate.dense.bias"] = r(H, std=0.1)
        w[h + "output.dense.weight"] = r(C, H)
        w[h + "output.dense.bias"] = r(C, std=0.1)
    return w


def forward(w, x, y):
    C, nh, eps, p = CFG["n_embd"], CFG["n_head"], CFG["norm_eps"], CFG["patch_size"]
    D = C // nh
    t = F.conv2d(x, w["vit.embeddings.patch_embeddings.projection.weight"], w["vit.embeddings.patch_embeddings.projection.bias"], stride=p)
    t = t.flatten(2).transpose(1, 2)  # (B, N, C)
    t = torch.cat([w["vit.embeddings.cls_token"].expand(x.shape[0], 1, C), t], 1) + w["vit.embeddings.position_embeddings"]
    Bn, T, _ = t.shape
    for l in range(CFG["n_layer"]):
        h = f"vit.encoder.layer.{l}."
        a = F.layer_norm(t, (C,), w[h + "layernorm_before.weight"], w[h + "layernorm_before.bias"], eps)
        q, k, v = (F.linear(a, w[h + f"attention.attention.{n}.weight"], w[h + f"attention.attention.{n}.bias"]).view(Bn, T, nh, D).transpose(1, 2) for n in ("query", "key", "value"))
        att = torch.softmax(q @ k.transpose(-1, -2) / D ** 0.5, -1)  # no mask: bidirectional
        o = (att @ v).transpose(1, 2).reshape(Bn, T, C)
        t = t + F.linear(o, w[h + "attention.output.dense.weight"], w[h + "attention.output.dense.bias"])
        m = F.layer_norm(t, (C,), w[h + "layernorm_after.weight"], w[h + "layernorm_after.bias"], eps)
        m = F.gelu(F.linear(m, w[h + "intermediate.dense.weight"], w[h + "intermediate.dense.bias"]))
        t = t + F.linear(m, w[h + "output.dense.weight"], w[h + "output.dense.bias"])
    t = F.layer_norm(t, (C,), w["vit.layernorm.weight"], w["vit.layernorm.bias"], eps)
    logits = F.linear(t[:, 0], w["classifier.weight"], w["classifier.bias"])
    return logits, F.cross_entropy(logits, y)


def main():
    gen = torch.Generator().manual_seed(16)
    w = {k: v.requires_grad_() for k, v in init(gen).items()}
    x = torch.randn(B, CFG["num_channels"], CFG["image_size"], CFG["image_size"], generator=gen)
    y = torch.tensor([0, 2, 1])
    params = {k: {"shape": list(v.shape), "data": v.detach().flatten().tolist()} for k, v in w.items()}
    logits, loss = forward(w, x, y)
    loss.backward()
    grads = {k: v.grad.flatten().tolist() for k, v in w.items()}
    opt = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    # Decay on matrices (ndim >= 2), as lmforge's optimizer factory groups parameters.
    decay = [v for v in w.values() if v.dim() >= 2]
    plain = [v for v in w.values() if v.dim() < 2]
    o = torch.optim.AdamW([{"params": decay, "weight_decay": opt["weight_decay"]}, {"params": plain, "weight_decay": 0.0}], lr=opt["lr"], betas=opt["betas"], eps=opt["eps"])
    for v in w.values():
        v.grad = None
    losses = []
    for _ in range(5):
        o.zero_grad()
        _, l = forward(w, x, y)
        l.backward()
        o.step()
        losses.append(l.item())
    with open(OUT, "w") as f:
        json.dump({"config": CFG, "batch": B, "images": x.flatten().tolist(), "labels": y.tolist(), "params": params,
                   "logits": logits.detach().flatten().tolist(), "loss": loss.item(), "grads": grads,
                   "adamw": {"lr": opt["lr"], "betas": list(opt["betas"]), "eps": opt["eps"], "weight_decay": opt["weight_decay"], "steps": 5},
                   "adamw_losses": losses}, f)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
