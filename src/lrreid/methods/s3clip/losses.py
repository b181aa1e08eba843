"""S3-CLIP's losses: pure functions of tensors.

SR network S (phase 1)::

    L_SR   = L_pixel + L_TDP + L_temporal
    L_pixel    = || S(x^h2l) - x^h ||_1
    L_TDP      = || I(X^h) - I(S(X^h2l)) ||_1            (I frozen; the caller detaches I's weights)
    L_temporal = 1/(T-1) sum_t || (S(x_t+1) - S(x_t)) - (x^h_t+1 - x^h_t) ||_1

ReID encoder I (stage 0 and phase 2), after CLIP-ReID (Li et al., AAAI 2023)::

    L_i2t, L_t2i  supervised image<->text contrastive losses between a batch of tracklet features
                  and the text features of their identities' prompts (all same-identity pairs are
                  positives)
    L_v2sce       video-to-text cross-entropy: each tracklet feature classified against the text
                  features of *all* training identities (CLIP-ReID's stage-2 image-to-text CE,
                  applied to the pooled video feature)
    L_id, L_tri   identity cross-entropy with label smoothing and batch-hard triplet
                  (lrreid.losses)

Similarities between image/video and text features are cosines multiplied by ``logit_scale``
(CLIP's temperature, 100 for OpenAI's weights).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lrreid.losses import cross_entropy, l1_loss, soft_cross_entropy, triplet_loss

__all__ = [
    "cross_entropy", "soft_cross_entropy", "triplet_loss", "l1_loss", "pixel_loss", "task_driven_perceptual_loss",
    "temporal_consistency_loss", "image_to_text_loss", "text_to_image_loss", "video_to_text_ce",
]


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """L_pixel: mean absolute error between super-resolved and HR frames (any matching shape)."""
    return l1_loss(sr, hr)


def task_driven_perceptual_loss(hr_features: torch.Tensor, sr_features: torch.Tensor) -> torch.Tensor:
    """L_TDP: mean absolute difference of ReID features of HR and super-resolved tracklets.

    ``hr_features`` is the target (detached here); ``sr_features`` must come from the encoder run
    with its weights detached, so the gradient reaches the SR network only.

    Example::

        loss = task_driven_perceptual_loss(encoder(hr).feature, frozen_call(encoder, sr).feature)
    """
    return l1_loss(sr_features, hr_features.detach())


def temporal_consistency_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """L_temporal on tracklets ``[B, T, C, H, W]``: frame-to-frame changes of S's output must match HR's.

    Mean over the T-1 consecutive pairs (and pixels) of ``|(sr_t+1 - sr_t) - (hr_t+1 - hr_t)|``;
    0 when ``sr == hr`` and for one-frame tracklets (no pair).  Flicker (S output changing where HR
    does not) makes it positive.

    Example::

        loss = temporal_consistency_loss(sr.view(B, T, 3, H, W), hr)
    """
    if sr.shape != hr.shape:
        raise ValueError(f"SR {tuple(sr.shape)} and HR {tuple(hr.shape)} tracklets differ in shape")
    if sr.dim() < 3:
        raise ValueError(f"expected tracklets [B, T, ...], got shape {tuple(sr.shape)}")
    if sr.shape[1] < 2:
        return sr.sum() * 0.0
    d_sr = sr[:, 1:].float() - sr[:, :-1].float()
    d_hr = hr[:, 1:].float() - hr[:, :-1].float()
    return (d_sr - d_hr.detach()).abs().mean()


def _supervised_contrastive(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -mean_{positives j} log softmax(logits_i)_j (rows without a positive skipped)."""
    log_prob = F.log_softmax(logits.float(), dim=1)
    pos = positive.float()
    counts = pos.sum(dim=1)
    valid = counts > 0
    if not valid.any():
        return logits.sum() * 0.0
    per_row = -(log_prob * pos).sum(dim=1)[valid] / counts[valid]
    return per_row.mean()


def _cosine_logits(a: torch.Tensor, b: torch.Tensor, logit_scale: float | torch.Tensor) -> torch.Tensor:
    return logit_scale * F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).t()


def image_to_text_loss(image_features: torch.Tensor, text_features: torch.Tensor, pids: torch.Tensor,
                       logit_scale: float | torch.Tensor = 100.0) -> torch.Tensor:
    """L_i2t: each image (tracklet) picks its identity's prompt among the batch's prompts.

    ``image_features [B, E]``, ``text_features [B, E]`` (row i is the prompt of ``pids[i]``); every
    text of the same identity is a positive.

    Example::

        loss = image_to_text_loss(video.projected, text_encoder(*prompts.embed(pids, emb)), pids)
    """
    logits = _cosine_logits(image_features, text_features, logit_scale)
    return _supervised_contrastive(logits, pids[:, None] == pids[None, :])


def text_to_image_loss(image_features: torch.Tensor, text_features: torch.Tensor, pids: torch.Tensor,
                       logit_scale: float | torch.Tensor = 100.0) -> torch.Tensor:
    """L_t2i: each prompt picks the images (tracklets) of its identity among the batch's images."""
    logits = _cosine_logits(text_features, image_features, logit_scale)
    return _supervised_contrastive(logits, pids[:, None] == pids[None, :])


def video_to_text_ce(video_features: torch.Tensor, all_text_features: torch.Tensor, pids: torch.Tensor,
                     logit_scale: float | torch.Tensor = 100.0, label_smoothing: float = 0.0) -> torch.Tensor:
    """L_v2sce: cross-entropy of each tracklet feature against the text features of all C identities.

    ``video_features [B, E]``, ``all_text_features [C, E]`` (row c = prompt of identity c, usually
    precomputed without gradient), ``pids [B]`` in 0..C-1.

    Example::

        loss = video_to_text_ce(video.projected, identity_text_features, pids)
    """
    return cross_entropy(_cosine_logits(video_features, all_text_features, logit_scale), pids, label_smoothing)
