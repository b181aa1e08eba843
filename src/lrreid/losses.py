"""Losses shared by the methods: pure functions of tensors, composed by the method that owns them.

Every function returns a scalar tensor (the mean over the batch) that can be backpropagated.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Identity (classification) loss, optionally with label smoothing.

    Example::

        loss = cross_entropy(classifier(features), batch["pid"], label_smoothing=0.1)
    """
    return F.cross_entropy(logits.float(), targets.long(), label_smoothing=label_smoothing)


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a probability vector per sample: mean_i ( -sum_k l_ik log p_ik ).

    PRI's prediction loss (Eq. 4): the predictor's scale probabilities p against the dynamic
    soft labels l.  ``soft_targets`` rows should sum to 1; they get no gradient.

    Example::

        loss = soft_cross_entropy(predictor(lr_images), soft_labels[batch["index"]])
    """
    if logits.shape != soft_targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and soft targets {tuple(soft_targets.shape)} differ in shape")
    log_p = F.log_softmax(logits.float(), dim=1)
    return -(soft_targets.detach().to(log_p.dtype) * log_p).sum(dim=1).mean()


def l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (the SR reconstruction loss). Example: ``l1_loss(sr(lr), hr)``."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    return (prediction.float() - target.float()).abs().mean()


def pairwise_distances(features: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between every pair of rows; the diagonal is exactly 0."""
    x = features.float()
    sq = (x * x).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * x @ x.t()
    d2 = d2.clamp_min(0.0)
    # sqrt has an infinite gradient at 0; a tiny floor keeps identical pairs finite.
    dist = d2.clamp_min(1e-12).sqrt()
    return dist * (1.0 - torch.eye(len(x), device=x.device, dtype=x.dtype))


def triplet_loss(
    features: torch.Tensor,
    pids: torch.Tensor,
    margin: float = 0.3,
    hard_mining: bool = True,
    normalize: bool = False,
) -> torch.Tensor:
    """Triplet loss on Euclidean distances of a batch of features.

    ``hard_mining=True`` (batch-hard): for each anchor, its farthest positive and nearest negative
    in the batch, ``mean_a max(0, d(a,p*) - d(a,n*) + margin)``.  ``hard_mining=False``: the mean of
    ``max(0, d(a,p) - d(a,n) + margin)`` over every valid triplet (a, p, n) with p != a.
    ``margin <= 0`` uses the soft margin ``log(1 + exp(d_ap - d_an))`` instead of the hinge.
    ``normalize`` L2-normalises the features first.  Anchors without a positive or a negative in
    the batch are skipped; a batch without any triplet gives 0 (still differentiable).

    Example::

        loss = triplet_loss(embeddings, batch["pid"], margin=0.3)   # P x K batch
    """
    if normalize:
        features = F.normalize(features.float(), dim=1)
    dist = pairwise_distances(features)
    pids = pids.to(dist.device)
    same = pids[:, None] == pids[None, :]
    eye = torch.eye(len(pids), dtype=torch.bool, device=dist.device)
    positive = same & ~eye
    negative = ~same

    def penalty(gap: torch.Tensor) -> torch.Tensor:
        return F.softplus(gap) if margin <= 0 else F.relu(gap + margin)

    if hard_mining:
        valid = positive.any(dim=1) & negative.any(dim=1)
        if not valid.any():
            return features.sum() * 0.0
        hardest_pos = dist.masked_fill(~positive, float("-inf")).amax(dim=1)
        hardest_neg = dist.masked_fill(~negative, float("inf")).amin(dim=1)
        return penalty(hardest_pos[valid] - hardest_neg[valid]).mean()

    # gap[a, p, n] = d(a, p) - d(a, n) over valid (a, p, n)
    valid = positive[:, :, None] & negative[:, None, :]
    if not valid.any():
        return features.sum() * 0.0
    gap = dist[:, :, None] - dist[:, None, :]
    return penalty(gap[valid]).mean()
