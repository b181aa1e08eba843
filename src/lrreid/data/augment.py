"""Batch augmentations applied to a network's input tensors inside a training step.

They act on F's normalised inputs, after super-resolution, so the SR target (x_h) and the soft-label
measurements stay clean; only what the re-ID network learns from is perturbed.
"""
from __future__ import annotations

import math

import torch


def random_erasing(images: torch.Tensor, probability: float = 0.5, area: tuple[float, float] = (0.02, 0.4),
                   aspect: float = 0.3, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random erasing (Zhong et al., AAAI 2020) on a batch ``[B, C, H, W]``; a new tensor.

    Each image, with ``probability``, gets one rectangle of ``area`` (fraction of the image, drawn
    uniformly) and aspect ratio in ``[aspect, 1/aspect]`` (log-uniform) filled with Gaussian noise of
    the batch's own scale.  The usual re-ID regulariser (Bag of Tricks: p 0.5, area 0.02-0.4, ratio 0.3).

    >>> x = torch.zeros(4, 3, 32, 16)
    >>> bool((random_erasing(x, probability=0.0) == x).all())
    True
    """
    if probability <= 0:
        return images
    out = images.clone()
    b, _, h, w = images.shape
    draws = torch.rand(b, 5, generator=generator)
    noise_scale = images.detach().float().std().clamp_min(1e-3)
    for i in range(b):
        if float(draws[i, 0]) >= probability:
            continue
        target = (area[0] + (area[1] - area[0]) * float(draws[i, 1])) * h * w
        ratio = math.exp(math.log(aspect) + (-2 * math.log(aspect)) * float(draws[i, 2]))
        eh = min(h, max(1, int(round(math.sqrt(target * ratio)))))
        ew = min(w, max(1, int(round(math.sqrt(target / ratio)))))
        top = int(float(draws[i, 3]) * (h - eh + 1)) if h > eh else 0
        left = int(float(draws[i, 4]) * (w - ew + 1)) if w > ew else 0
        out[i, :, top:top + eh, left:left + ew] = torch.randn(
            out.shape[1], eh, ew, generator=generator, dtype=torch.float32).to(out.dtype) * noise_scale
    return out
