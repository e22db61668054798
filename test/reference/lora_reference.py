#!/usr/bin/env python3
"""Independent check of lmforge's LoRA: reads a base GPT-2 model (config.json + model.safetensors) and a PEFT
adapter (adapter_config.json + adapter_model.safetensors) from disk with its own safetensors parser, applies the
adapter as PEFT's LoRA layer does (y = x·W + b + (α/r)·(x·Aᵀ)·Bᵀ, W stored (in, out) as GPT-2's Conv1D,
target_modules matched by PEFT's rules, rank_pattern / alpha_pattern's per-module r and lora_alpha; rsLoRA's α/√r; DoRA's y = (x·(W + s·(B·A)ᵀ))·m/‖W + s·(B·A)ᵀ‖_col + b with
m = lora_magnitude_vector (PEFT's use_dora, norms over each output column); modules_to_save's saved tensors replacing the base's, the
tied head following a saved wte only with ensure_weight_tying, as PEFT ≥ 0.18 does) and runs GPT-2's forward in
float64 PyTorch. Writes the logits for a fixed input to test/fixtures/lora/logits.json (adapter/) and
logits-extras.json (adapter-extras/), logits-dora.json (adapter-dora/) and logits-pattern.json (adapter-pattern/), which test/nn/lora.test.ts compares with lmforge's adapted model.

Run once with Debian's python3-torch (no `peft` package needed):  /usr/bin/python3 test/reference/lora_reference.py
The inputs were written by test/nn/make-lora-fixture.ts. CI never runs this script; it only reads the fixture.
"""
import json
import math
import os
import re
import struct

import torch

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "lora")
DTYPES = {"F32": ("f", 4), "F64": ("d", 8)}


def read_safetensors(path):
    """8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then raw bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    body = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        code, size = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = (end - begin) // size
        values = struct.unpack("<%d%s" % (count, code), body[begin:end])
        out[name] = torch.tensor(values, dtype=torch.float64).reshape(info["shape"])
    return out


def peft_targets(key, target_modules):
    """PEFT's check_target_module_exists: a string is a full regex match; a list matches the key or a `.name` suffix."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, key) is not None
    return any(key == t or key.endswith("." + t) for t in target_modules)


def pattern_key(pattern_keys, key):
    """PEFT's get_pattern_key: the first pattern that matches the whole module path or a dotted suffix of it."""
    for p in pattern_keys:
        if re.match(r"(.*\.)?(%s)$" % p, key):
            return p
    return key


def main(adapter_dir, out_name):
    cfg = json.load(open(os.path.join(FIX, "base", "config.json")))
    w = read_safetensors(os.path.join(FIX, "base", "model.safetensors"))
    acfg = json.load(open(os.path.join(FIX, adapter_dir, "adapter_config.json")))
    aw = read_safetensors(os.path.join(FIX, adapter_dir, "adapter_model.safetensors"))
    assert acfg["peft_type"] == "LORA" and acfg["fan_in_fan_out"] and acfg["bias"] == "none"
    rank_pattern, alpha_pattern = acfg.get("rank_pattern") or {}, acfg.get("alpha_pattern") or {}

    def rank_alpha(key):
        """r and lora_alpha of one module: rank_pattern / alpha_pattern's value where a key matches, else r / lora_alpha."""
        r = rank_pattern.get(pattern_key(rank_pattern.keys(), key), acfg["r"])
        alpha = alpha_pattern.get(pattern_key(alpha_pattern.keys(), key), acfg["lora_alpha"])
        return r, alpha
    prefix = "base_model.model."
    adapted = []
    # modules_to_save: PEFT saves the trained copy's tensors as base_model.model.<module>.<param>; they replace the base's.
    head = w["transformer.wte.weight"]
    saved = sorted(k[len(prefix) :] for k in aw if ".lora_" not in k)
    assert all(k.endswith(("lora_A.weight", "lora_B.weight")) or (acfg.get("use_dora") and k.endswith(".lora_magnitude_vector")) for k in aw if ".lora_" in k)
    for key in saved:
        module = key.rsplit(".", 1)[0]
        assert peft_targets(module, acfg["modules_to_save"] or []), key
        assert aw[prefix + key].shape == w[key].shape, key
        w[key] = aw[prefix + key]
    if acfg.get("ensure_weight_tying"):
        head = w["transformer.wte.weight"]

    def conv1d(x, key):
        """GPT-2's Conv1D (weight (in, out)) plus the adapter if the module is a target (lora_dropout: eval mode)."""
        y = x @ w[key + ".weight"] + w[key + ".bias"]
        if peft_targets(key, acfg["target_modules"]):
            r, alpha = rank_alpha(key)
            scale = alpha / math.sqrt(r) if acfg.get("use_rslora") else alpha / r
            A = aw[prefix + key + ".lora_A.weight"]  # (r, in)
            B = aw[prefix + key + ".lora_B.weight"]  # (out, r)
            assert A.shape == (r, x.shape[-1]) and B.shape == (y.shape[-1], r)
            if acfg.get("use_dora"):
                # DoRA as a weight: renormalise each output column of W + ΔW (W is (in, out)) to the learned magnitude.
                m = aw[prefix + key + ".lora_magnitude_vector"]  # (out,)
                full = w[key + ".weight"] + scale * (B @ A).T
                y = (x @ full) * (m / full.norm(dim=0)) + w[key + ".bias"]
            else:
                y = y + scale * ((x @ A.T) @ B.T)
            adapted.append(key)
        return y

    C, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg["layer_norm_epsilon"]
    exact_gelu = cfg["activation_function"] == "gelu"

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (C,), w[name + ".weight"], w[name + ".bias"], eps)

    idx = torch.tensor([[1, 5, 9, 2, 7, 3, 11, 0], [4, 4, 8, 15, 16, 23, 1, 2]])
    Bn, T = idx.shape
    x = w["transformer.wte.weight"][idx] + w["transformer.wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        h = "transformer.h.%d." % l
        qkv = conv1d(ln(x, h + "ln_1"), h + "attn.c_attn")  # (B, T, 3C)
        q, k, v = [t.reshape(Bn, T, H, C // H).transpose(1, 2) for t in qkv.split(C, dim=2)]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(Bn, T, C)
        x = x + conv1d(y, h + "attn.c_proj")
        m = conv1d(ln(x, h + "ln_2"), h + "mlp.c_fc")
        m = torch.nn.functional.gelu(m, approximate="none" if exact_gelu else "tanh")
        x = x + conv1d(m, h + "mlp.c_proj")
    x = ln(x, "transformer.ln_f")
    logits = x @ head.T  # tied head
    out = {
        "note": "written by test/reference/lora_reference.py (float64 PyTorch %s) from test/fixtures/lora/{base,%s}" % (torch.__version__, adapter_dir),
        "idx": idx.tolist(),
        "adapted_modules": adapted,
        "saved_parameters": saved,
        "shape": list(logits.shape),
        "logits": [round(v, 10) for v in logits.flatten().tolist()],
    }
    with open(os.path.join(FIX, out_name), "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(adapter_dir, "adapted", adapted, "saved", saved, "logits", list(logits.shape), "max |logit|", logits.abs().max().item())


if __name__ == "__main__":
    main("adapter", "logits.json")
    main("adapter-extras", "logits-extras.json")
    main("adapter-dora", "logits-dora.json")
    main("adapter-pattern", "logits-pattern.json")
