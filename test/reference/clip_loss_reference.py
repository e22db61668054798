#!/usr/bin/env python3
"""Independent PyTorch computation of CLIP's symmetric InfoNCE (open_clip's ClipLoss without gathering), used once to
write test/fixtures/clip-loss.json: unnormalised image and text features, the logit scale parameter (one below and one
above the clamp at ln 100), the loss, and the gradients of the features and of the scale parameter.

Run with Debian's python3-torch:  /usr/bin/python3 test/reference/clip_loss_reference.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "clip-loss.json")


def case(gen, B, E, logit_scale):
    img = torch.randn(B, E, generator=gen).requires_grad_()
    txt = torch.randn(B, E, generator=gen).requires_grad_()
    s = torch.tensor([logit_scale]).requires_grad_()
    i = F.normalize(img, dim=-1)
    t = F.normalize(txt, dim=-1)
    scale = torch.clamp(s, max=math.log(100)).exp()
    logits = scale * i @ t.T
    labels = torch.arange(B)
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    loss.backward()
    return {"B": B, "E": E, "img": img.detach().flatten().tolist(), "txt": txt.detach().flatten().tolist(), "logit_scale": logit_scale,
            "loss": loss.item(), "grad_img": img.grad.flatten().tolist(), "grad_txt": txt.grad.flatten().tolist(), "grad_scale": s.grad.item()}


def main():
    gen = torch.Generator().manual_seed(7)
    cases = [case(gen, 5, 4, math.log(1 / 0.07)), case(gen, 3, 6, 5.0)]
    with open(OUT, "w") as f:
        json.dump({"cases": cases}, f)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
