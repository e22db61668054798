#!/usr/bin/env python3
"""Independent PyTorch computation of the training loss terms of models/head-loss.ts, used once to write
test/fixtures/loss-terms.json: torch's cross_entropy(label_smoothing=eps, ignore_index=-1) plus PaLM's z-loss
lam * mean(logsumexp(logits)^2) over the rows that count, with the gradient of the total with respect to the logits.

Run with Debian's python3-torch:  /usr/bin/python3 test/reference/loss_terms_reference.py
"""
import json
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "loss-terms.json")


def case(gen, N, V, eps, lam, ignored):
    logits = (3 * torch.randn(N, V, generator=gen)).requires_grad_()
    targets = torch.randint(0, V, (N,), generator=gen)
    for i in ignored:
        targets[i] = -1
    keep = targets != -1
    smoothed = F.cross_entropy(logits, targets, ignore_index=-1, label_smoothing=eps)
    plain = F.cross_entropy(logits, targets, ignore_index=-1)
    z = lam * (torch.logsumexp(logits, dim=-1)[keep] ** 2).mean()
    total = smoothed + z
    total.backward()
    return {"N": N, "V": V, "label_smoothing": eps, "z_loss": lam, "logits": logits.detach().flatten().tolist(),
            "targets": targets.tolist(), "ce": plain.item(), "smoothed": smoothed.item(), "z": z.item(),
            "total": total.item(), "grad": logits.grad.flatten().tolist()}


def main():
    gen = torch.Generator().manual_seed(14)
    cases = [case(gen, 6, 5, 0.1, 1e-4, [2]), case(gen, 4, 9, 0.3, 0.05, []), case(gen, 5, 3, 0.0, 0.01, [0, 4])]
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
