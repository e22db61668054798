#!/usr/bin/env python3
"""Independent PyTorch implementations of the update rules of Adafactor, Lion, Muon and Shampoo, written from the
papers, used once to produce the golden fixture test/fixtures/optimizers.json that test/optim/*.test.ts compare with.

Run with Debian's python3-torch (1.13, which has none of these optimizers):
    /usr/bin/python3 test/reference/optimizers_reference.py
CI never runs this script; it only reads the fixture. Everything is float64; the TypeScript side runs in float32
and is compared within a float32 tolerance.

Problem: a 5x3 matrix `w` (stored as lmforge stores a Linear weight, (in, out)) and a 3-vector `b`, both drawn here,
with 6 fixed gradients each and a gradient scale per step (what lmforge's step(gradScale) multiplies gradients by).
Each case records both parameters after every step. Option names in a case are the TypeScript option names.

Formulas (t is the 1-based step, g the scaled gradient):
  Adafactor (Shazeer & Stern 2018, Alg. 4/5 with update clipping): beta2_t = 1 - t^c; matrices R_t = beta2_t R + (1 -
    beta2_t)(g^2 + eps1) 1_m (row sums), C_t likewise (column sums), V = R C^T / (1^T R); vectors V = beta2_t V + (1 -
    beta2_t)(g^2 + eps1); U = g / sqrt(V); U /= max(1, RMS(U)/d); optional m = beta1 m + (1 - beta1) U; rho_t =
    min(1e-2, 1/sqrt(t)) (or lr), alpha_t = max(eps2, RMS(x_{t-1})) rho_t (or rho_t); x -= alpha_t (lambda x + U).
    (This script keeps the paper's sums; lmforge keeps means, the same V.)
  Lion (Chen et al. 2023, Program 1): c = beta1 m + (1 - beta1) g; x -= lr (sign(c) + lambda x); m = beta2 m + (1 - beta2) g.
  Muon (Jordan et al. 2024): in PyTorch's (out, in) orientation W = w^T: buf = mu buf + G; u = G + mu buf (Nesterov);
    X = u / (||u||_F + 1e-7), transposed when rows > cols; 5 x [A = X X^T; X = a X + (b A + c A^2) X] with (a, b, c)
    = (3.4445, -4.7750, 2.0315); W = W (1 - lr lambda) - lr sqrt(max(1, rows/cols)) X. Vectors: AdamW (decoupled
    decay, bias-corrected moments) with their own lr.
  Shampoo (Gupta et al. 2018) with grafting (Anil et al. 2020): per block of at most B x B, L = d L + (1 - d) G G^T,
    R = d R + (1 - d) G^T G (d = statDecay; d = 1: the paper's L += G G^T); from step s0 = startStep on, at steps s0,
    s0+N, ... the roots (L + r I)^(-1/4), (R + r I)^(-1/4) by torch.linalg.eigh, with the ridge r = eps, or
    eps * lambda_max when epsRelative; P = L^(-1/4) M R^(-1/4) with M = G for Adagrad grafting and M = m_hat (AdamW's
    bias-corrected first moment, Distributed Shampoo's filtered gradient) for AdamW grafting, rescaled to the
    Frobenius norm of the grafted step's block (Adagrad: g / (sqrt(sum g^2) + eps'); AdamW: m_hat / (sqrt(v_hat) +
    eps')); before s0, and for vectors, the grafted step; x = x (1 - lr lambda) - lr step.
"""
import json
import math
import os

import torch

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "optimizers.json")
STEPS = 6


def rms(x):
    return x.pow(2).mean().sqrt().item()


def adafactor(params, grads, scales, o):
    x = {k: v.clone() for k, v in params.items()}
    st = {}
    out = []
    for t in range(1, STEPS + 1):
        for k in x:
            g = grads[t - 1][k] * scales[t - 1]
            b2 = 1 - t ** o["decayRate"]
            g2 = g * g + o["eps1"]
            if g.dim() == 2:
                R, C = st.get(k + ".R", torch.zeros(g.shape[0])), st.get(k + ".C", torch.zeros(g.shape[1]))
                R = b2 * R + (1 - b2) * g2.sum(dim=1)
                C = b2 * C + (1 - b2) * g2.sum(dim=0)
                st[k + ".R"], st[k + ".C"] = R, C
                V = torch.outer(R, C) / R.sum()
            else:
                V = b2 * st.get(k + ".v", torch.zeros_like(g)) + (1 - b2) * g2
                st[k + ".v"] = V
            U = g / V.sqrt()
            U = U / max(1.0, rms(U) / o["clipThreshold"])
            if o["beta1"] > 0:
                m = o["beta1"] * st.get(k + ".m", torch.zeros_like(g)) + (1 - o["beta1"]) * U
                st[k + ".m"] = m
                U = m
            rho = min(1e-2, 1 / math.sqrt(t)) if o["relativeStep"] else o["lr"]
            alpha = max(o["eps2"], rms(x[k])) * rho if o["scaleParameter"] else rho
            x[k] = x[k] - alpha * (o["weightDecay"] * x[k] + U)
        out.append({k: v.clone() for k, v in x.items()})
    return out


def lion(params, grads, scales, o):
    x = {k: v.clone() for k, v in params.items()}
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    out = []
    for t in range(1, STEPS + 1):
        for k in x:
            g = grads[t - 1][k] * scales[t - 1]
            c = o["beta1"] * m[k] + (1 - o["beta1"]) * g
            x[k] = x[k] - o["lr"] * (torch.sign(c) + o["weightDecay"] * x[k])
            m[k] = o["beta2"] * m[k] + (1 - o["beta2"]) * g
        out.append({k: v.clone() for k, v in x.items()})
    return out


def newton_schulz5(G, steps):
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G / (G.norm() + 1e-7)
    tall = G.size(0) > G.size(1)
    if tall:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


def muon(params, grads, scales, o, po):
    x = {k: v.clone() for k, v in params.items()}
    st = {}
    out = []
    for t in range(1, STEPS + 1):
        for k in x:
            oo = {**o, **po.get(k, {})}
            g = grads[t - 1][k] * scales[t - 1]
            if oo["muon"]:
                W, G = x[k].T, g.T  # PyTorch's (out, in) orientation
                buf = oo["momentum"] * st.get(k + ".buf", torch.zeros_like(G)) + G
                st[k + ".buf"] = buf
                u = G + oo["momentum"] * buf if oo["nesterov"] else buf
                O = newton_schulz5(u, oo["nsSteps"])
                W = W * (1 - oo["lr"] * oo["weightDecay"]) - oo["lr"] * max(1.0, W.size(0) / W.size(1)) ** 0.5 * O
                x[k] = W.T.contiguous()
            else:
                m = oo["beta1"] * st.get(k + ".m", torch.zeros_like(g)) + (1 - oo["beta1"]) * g
                v = oo["beta2"] * st.get(k + ".v", torch.zeros_like(g)) + (1 - oo["beta2"]) * g * g
                st[k + ".m"], st[k + ".v"] = m, v
                mh, vh = m / (1 - oo["beta1"] ** t), v / (1 - oo["beta2"] ** t)
                x[k] = x[k] * (1 - oo["lr"] * oo["weightDecay"]) - oo["lr"] * mh / (vh.sqrt() + oo["eps"])
        out.append({k: v.clone() for k, v in x.items()})
    return out


def inv_root(S, eps, p, relative=False):
    w, Q = torch.linalg.eigh(S)
    lmax = float(w.max())
    ridge = eps * lmax if relative and lmax > 0 else eps
    return Q @ torch.diag((w.clamp(min=0) + ridge) ** (-1.0 / p)) @ Q.T


def shampoo(params, grads, scales, o):
    x = {k: v.clone() for k, v in params.items()}
    st = {}
    out = []
    B = o["blockSize"]
    for t in range(1, STEPS + 1):
        for k in x:
            g = grads[t - 1][k] * scales[t - 1]
            if o["graft"] == "adagrad":
                acc = st.get(k + ".acc", torch.zeros_like(g)) + g * g
                st[k + ".acc"] = acc
                D = g / (acc.sqrt() + o["graftEps"])
                M = g
            else:
                m = o["beta1"] * st.get(k + ".m", torch.zeros_like(g)) + (1 - o["beta1"]) * g
                v = o["beta2"] * st.get(k + ".v", torch.zeros_like(g)) + (1 - o["beta2"]) * g * g
                st[k + ".m"], st[k + ".v"] = m, v
                M = m / (1 - o["beta1"] ** t)
                D = M / ((v / (1 - o["beta2"] ** t)).sqrt() + o["graftEps"])
            d, s0 = o["statDecay"], o["startStep"]
            if g.dim() == 2:
                D = D.clone()
                for r0 in range(0, g.shape[0], B):
                    for c0 in range(0, g.shape[1], B):
                        key = f"{k}.{r0}.{c0}"
                        Gb = g[r0:r0 + B, c0:c0 + B]
                        L = d * st.get(key + ".L", torch.zeros(Gb.shape[0], Gb.shape[0])) + (1 - d if d < 1 else 1) * Gb @ Gb.T
                        R = d * st.get(key + ".R", torch.zeros(Gb.shape[1], Gb.shape[1])) + (1 - d if d < 1 else 1) * Gb.T @ Gb
                        st[key + ".L"], st[key + ".R"] = L, R
                        if t < s0:
                            continue
                        if (t - s0) % o["updateFreq"] == 0:
                            rel = o["epsRelative"]
                            st[key + ".Lr"], st[key + ".Rr"] = inv_root(L, o["eps"], 4, rel), inv_root(R, o["eps"], 4, rel)
                        P = st[key + ".Lr"] @ M[r0:r0 + B, c0:c0 + B] @ st[key + ".Rr"]
                        Db = D[r0:r0 + B, c0:c0 + B]
                        D[r0:r0 + B, c0:c0 + B] = P * (Db.norm() / P.norm())
            x[k] = x[k] * (1 - o["lr"] * o["weightDecay"]) - o["lr"] * D
        out.append({k: v.clone() for k, v in x.items()})
    return out


def flat(t):
    return [float(v) for v in t.reshape(-1)]


def main():
    gen = torch.Generator().manual_seed(13)
    params = {"w": torch.randn(5, 3, generator=gen) * 0.5, "b": torch.randn(3, generator=gen) * 0.5}
    grads = [{"w": torch.randn(5, 3, generator=gen), "b": torch.randn(3, generator=gen)} for _ in range(STEPS)]
    scales = [1.0, 0.5, 1.0, 2.0, 1.0, 0.75]
    ada = {"lr": 0.0, "beta1": 0.0, "decayRate": -0.8, "eps1": 1e-30, "eps2": 1e-3, "clipThreshold": 1.0,
           "relativeStep": True, "scaleParameter": True, "weightDecay": 0.0}
    cases = [
        ("adafactor", "adafactor", ada, {}, False),
        ("adafactor_beta1_lr_wd", "adafactor", {**ada, "beta1": 0.9, "relativeStep": False, "scaleParameter": False, "lr": 0.05, "weightDecay": 0.1}, {}, False),
        ("lion", "lion", {"lr": 0.01, "beta1": 0.9, "beta2": 0.99, "weightDecay": 0.1}, {}, False),
        ("muon", "muon", {"lr": 0.02, "muon": True, "momentum": 0.95, "nesterov": True, "nsSteps": 5, "weightDecay": 0.1,
                          "beta1": 0.9, "beta2": 0.95, "eps": 1e-10},
         {"b": {"muon": False, "lr": 0.01, "weightDecay": 0.0}}, False),
        ("muon_plain_momentum", "muon", {"lr": 0.02, "muon": True, "momentum": 0.9, "nesterov": False, "nsSteps": 5, "weightDecay": 0.0,
                                         "beta1": 0.9, "beta2": 0.95, "eps": 1e-10},
         {"b": {"muon": False, "lr": 0.01}}, False),
        # w stored transposed, (3, 5): fan_out/fan_in = 5/3, so the sqrt(max(1, rows/cols)) factor is not 1 here.
        ("muon_wide", "muon", {"lr": 0.02, "muon": True, "momentum": 0.95, "nesterov": True, "nsSteps": 5, "weightDecay": 0.0,
                               "beta1": 0.9, "beta2": 0.95, "eps": 1e-10},
         {"b": {"muon": False, "lr": 0.01}}, True),
        ("shampoo_adagrad", "shampoo", {"lr": 0.1, "eps": 1e-4, "epsRelative": False, "statDecay": 1.0, "startStep": 1, "updateFreq": 3,
                                        "blockSize": 128, "graft": "adagrad", "graftEps": 1e-8, "beta1": 0.9, "beta2": 0.999, "weightDecay": 0.0}, {}, False),
        ("shampoo_adamw_blocked", "shampoo", {"lr": 0.01, "eps": 1e-4, "epsRelative": False, "statDecay": 1.0, "startStep": 1, "updateFreq": 3,
                                              "blockSize": 2, "graft": "adamw", "graftEps": 1e-8, "beta1": 0.9, "beta2": 0.999, "weightDecay": 0.1},
         {}, False),
        # Relative ridge, decayed statistics, grafted steps until step 2, roots at steps 2 and 4.
        ("shampoo_adamw_relative_decay_start", "shampoo", {"lr": 0.01, "eps": 1e-3, "epsRelative": True, "statDecay": 0.9, "startStep": 2,
                                                           "updateFreq": 2, "blockSize": 128, "graft": "adamw", "graftEps": 1e-8, "beta1": 0.9,
                                                           "beta2": 0.99, "weightDecay": 0.0}, {}, False),
    ]
    run = {"adafactor": lambda P, G, o, po: adafactor(P, G, scales, o), "lion": lambda P, G, o, po: lion(P, G, scales, o),
           "muon": lambda P, G, o, po: muon(P, G, scales, o, po), "shampoo": lambda P, G, o, po: shampoo(P, G, scales, o)}
    fixture = {
        "doc": "written by test/reference/optimizers_reference.py; float64 PyTorch reference of each published update rule",
        "shapes": {k: list(v.shape) for k, v in params.items()},
        "init": {k: flat(v) for k, v in params.items()},
        "grads": [{k: flat(v) for k, v in g.items()} for g in grads],
        "scales": scales,
        "cases": [],
    }
    for name, kind, options, param_options, transpose in cases:
        # transpose: the case's w is the fixture's w transposed (its init and every gradient), so shape (3, 5).
        P = {**params, "w": params["w"].T.contiguous()} if transpose else params
        G = [{**g, "w": g["w"].T.contiguous()} for g in grads] if transpose else grads
        traj = run[kind](P, G, options, param_options)
        fixture["cases"].append({"name": name, "kind": kind, "options": options, "param_options": param_options, "transpose": transpose,
                                 "steps": [{k: flat(v) for k, v in s.items()} for s in traj]})
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases x {STEPS} steps")


if __name__ == "__main__":
    main()
