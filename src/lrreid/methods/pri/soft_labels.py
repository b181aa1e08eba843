"""PRI's scale-factor metric and dynamic soft labels (Han et al., ECCV 2020, Sec. 3.4).

For an LR image ``x_l`` super-resolved by each alternative scale ``r_i``, ``d_i`` is the Euclidean
distance between the re-ID feature of ``G_{r_i}(x_l)`` and that of an HR image of the same person.
Eq. 3 turns the distances into a label over the scales::

    l = softmax((mean(d) - d) ** gamma)

``gamma`` is odd so that a scale closer than average to the HR anchor keeps a positive score (an
odd power keeps the sign); ``gamma = 0`` gives the uniform label (the paper's degenerate case).
The paper's formula is tied to the scale of F's features: it was tuned on un-normalised 512-d
ResNet-50 features trained with a triplet margin of 10, where the d_i of one image differ by whole
units.  With smaller features (lrreid's F, a BN-neck feature, a fine-tuned re-ID encoder) the d_i
differ by a few hundredths and the label is flat (docs/pri.md, "Soft labels": measured).  So the
distances can first be divided by a per-image spread ``s`` (``label_norm``) and the result by a
temperature ``T`` (``label_temperature``)::

    l = softmax(((mean(d) - d) / s) ** gamma / T)       s = 1 (none), mean(d) (mean), std(d) (std)

``label_norm: none`` with ``T = 1`` is Eq. 3 exactly.  With ``mean`` the label depends only on the
relative differences of the distances, so multiplying F's features by a constant leaves it
unchanged; gamma keeps its role (an odd power of the centred distances, sign kept).

What ``d`` measures (``label_target``): ``distance`` is the paper's, the distance to the person's
own HR image.  It rewards a scale that brings the probe closer to its HR image even when it brings
it closer still to other persons' (on CAVIAR4REID, SR does: the labels' argmax was the scale that
ranks the true match best for only 26-54% of training images, docs/results.md).  ``margin``
(lrreid) subtracts the distance to the nearest HR image of another person in the batch
(:func:`margin_distances`), so the label rewards the scale that separates the person from the
others, which is what ranking needs; Eq. 3 is applied to it unchanged.

The labels are stored per training LR image in :class:`SoftLabelTable` and refreshed every
``omega`` epochs (:func:`should_refresh`).
"""
from __future__ import annotations

import numpy as np
import torch

from lrreid.errors import ConfigError


def check_gamma(gamma: int) -> int:
    """Return ``gamma`` if it is 0 or a positive odd integer, else raise ConfigError."""
    if isinstance(gamma, bool) or not isinstance(gamma, int) or gamma < 0 or (gamma > 0 and gamma % 2 == 0):
        raise ConfigError(f"loss.gamma must be 0 or a positive odd integer (1, 3, ...), got {gamma!r}")
    return gamma


LABEL_NORMS = ("none", "mean", "std")


def scale_factor_metric(distances: torch.Tensor, gamma: int = 1, norm: str = "none", temperature: float = 1.0) -> torch.Tensor:
    """Eq. 3: soft labels ``[B, N]`` from feature distances ``[B, N]`` to the HR anchor.

    ``norm`` divides the centred distances by a per-image spread first (module docstring);
    ``norm="none", temperature=1`` is the paper's formula.

    Example::

        >>> scale_factor_metric(torch.tensor([[1.0, 2.0, 3.0]]), gamma=1)
        tensor([[0.6652, 0.2447, 0.0900]])
        >>> scale_factor_metric(torch.tensor([[0.01, 0.02, 0.03]]), gamma=1)   # small features: flat
        tensor([[0.3367, 0.3333, 0.3300]])
        >>> scale_factor_metric(torch.tensor([[0.01, 0.02, 0.03]]), norm="mean", temperature=0.5)
        tensor([[0.6652, 0.2447, 0.0900]])
    """
    check_gamma(gamma)
    if norm not in LABEL_NORMS:
        raise ConfigError(f"loss.label_norm must be one of {', '.join(LABEL_NORMS)}, got {norm!r}")
    if not temperature > 0:
        raise ConfigError(f"loss.label_temperature must be > 0, got {temperature!r}")
    centred = distances.mean(dim=1, keepdim=True) - distances
    if norm == "mean":
        centred = centred / distances.mean(dim=1, keepdim=True).clamp_min(1e-12)
    elif norm == "std":
        centred = centred / distances.std(dim=1, unbiased=False, keepdim=True).clamp_min(1e-12)
    # torch.pow with an integer exponent keeps the sign of negative bases for odd gamma.
    return (torch.pow(centred, gamma) / temperature).softmax(dim=1)


def margin_distances(feats: torch.Tensor, anchors: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
    """``d`` of the ``margin`` label ``[B, N]``: distance to the own HR feature minus the nearest other person's.

    ``feats`` ``[N, B, D]``: F's feature of each of B LR images at each of N scales; ``anchors``
    ``[B, D]``: F's feature of each image's own x_h, the batch's HR images; ``pids`` ``[B]``.
    Negative where the own HR image is the nearer one; smaller is better, as for Eq. 3's distance.
    An image whose batch holds no other person keeps the plain distance (every scale of it alike,
    so its label is Eq. 3's).

    Example (one scale puts image 0 nearer its own anchor, but nearer still to person 1's)::

        >>> anchors = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
        >>> feats = torch.tensor([[[0.5, 0.0], [1.0, 0.0]], [[-0.6, 0.0], [1.0, 0.0]]])  # scale 0, scale 1
        >>> margin_distances(feats, anchors, torch.tensor([0, 1]))[0]
        tensor([ 0., -1.])
    """
    feats, anchors = feats.float(), anchors.float()
    own = (feats - anchors[None]).norm(dim=2)  # [N, B]
    dist = torch.cdist(feats, anchors[None].expand(feats.shape[0], -1, -1))  # [N, B, B]
    other = (pids[:, None] != pids[None, :]).to(dist.device)
    nearest_other = torch.where(other[None], dist, torch.tensor(float("inf"), device=dist.device)).min(dim=2).values
    d = torch.where(torch.isfinite(nearest_other), own - nearest_other, own)
    return d.t()


def label_statistics(labels: torch.Tensor) -> dict[str, float]:
    """Mean entropy (nats) and mean max-probability of soft labels ``[B, N]`` (uniform: ln N and 1/N)."""
    entropy = -(labels * labels.clamp_min(1e-12).log()).sum(dim=1)
    return {"entropy": float(entropy.mean()), "max_prob": float(labels.max(dim=1).values.mean())}


def best_ranking_scale(feats: torch.Tensor, anchors: torch.Tensor, query_pids: torch.Tensor, anchor_pids: torch.Tensor) -> torch.Tensor:
    """Per LR image, the scale index at which its true match ranks best among ``anchors``.

    ``feats`` ``[N, B, D]``: F's feature of each of B LR images at each of N scales; ``anchors``
    ``[A, D]`` with ``anchor_pids`` ``[A]``: the HR images to rank (e.g. the batch's x_h).  Rank =
    1 + the number of other persons' anchors nearer than the nearest true one; ties go to the larger
    margin (nearest wrong minus nearest true distance), then to the smaller scale -- the rule of the
    ``ideal`` predictor in evaluation.  What "the scale that ranks the true match best" means for the
    per-epoch statistics; ``-1`` where an image has no true anchor.
    """
    dist = torch.cdist(feats.float(), anchors.float()[None].expand(feats.shape[0], -1, -1))  # [N, B, A]
    true = query_pids[:, None] == anchor_pids[None, :]  # [B, A]
    inf = torch.tensor(float("inf"), device=dist.device)
    min_true = torch.where(true[None], dist, inf).min(dim=2).values  # [N, B]
    min_wrong = torch.where(~true[None], dist, inf).min(dim=2).values
    rank = 1 + ((dist < min_true[..., None]) & ~true[None]).sum(dim=2)  # [N, B]
    margin = min_wrong - min_true
    margin = torch.where(torch.isfinite(margin), margin, -min_true)  # no wrong anchor: the nearer true match wins
    best_rank = rank.min(dim=0).values
    score = torch.where(rank == best_rank[None], margin, torch.tensor(float("-inf"), device=dist.device))
    best = score.argmax(dim=0)  # first maximum: the smaller scale on exact ties
    return torch.where(true.any(dim=1), best, torch.full_like(best, -1))


def one_hot_labels(soft: torch.Tensor) -> torch.Tensor:
    """The one-hot ablation: 1 at the scale with the largest soft-label probability."""
    return torch.nn.functional.one_hot(soft.argmax(dim=1), soft.shape[1]).to(soft.dtype)


def should_refresh(epoch_in_phase: int, omega: int, rng: np.random.Generator) -> bool:
    """Whether the soft labels are re-measured in this joint-training epoch.

    ``omega >= 1``: every ``omega`` epochs, starting with the first (epochs 0, omega, 2*omega, ...).
    ``omega == 0``: a fair coin per epoch, as in the paper's ablation (``rng`` makes it reproducible).
    Images never measured yet are always measured when first seen, whatever this says.
    """
    if omega < 0:
        raise ConfigError(f"loss.omega must be >= 0, got {omega}")
    if omega == 0:
        return bool(rng.random() < 0.5)
    return epoch_in_phase % omega == 0


class SoftLabelTable:
    """One soft label per training LR image, plus whether it has been measured yet.

    Kept as two tensors so that the method can put them in its checkpoint (``extra_state``).

    Example::

        table = SoftLabelTable(num_images=10, num_scales=4)
        table.update(torch.tensor([3]), torch.tensor([[0.1, 0.6, 0.2, 0.1]]))
        labels, known = table.lookup(torch.tensor([3, 4]))   # known == [True, False]
    """

    def __init__(self, num_images: int, num_scales: int):
        self.labels = torch.full((num_images, num_scales), 1.0 / num_scales)
        self.measured = torch.zeros(num_images, dtype=torch.bool)
        self.refresh_count = torch.zeros((), dtype=torch.int64)  # how many epochs re-measured labels

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def num_scales(self) -> int:
        return self.labels.shape[1]

    def update(self, indices: torch.Tensor, labels: torch.Tensor) -> None:
        indices = indices.cpu()
        self.labels[indices] = labels.detach().float().cpu()
        self.measured[indices] = True

    def lookup(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices = indices.cpu()
        return self.labels[indices].clone(), self.measured[indices].clone()

    def state(self, prefix: str = "soft_labels") -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.labels": self.labels.clone(),
            f"{prefix}.measured": self.measured.clone(),
            f"{prefix}.refresh_count": self.refresh_count.clone(),
        }

    def load_state(self, state: dict[str, torch.Tensor], prefix: str = "soft_labels") -> None:
        from lrreid.errors import CheckpointError

        labels = state.get(f"{prefix}.labels")
        if labels is None:
            raise CheckpointError(f"checkpoint has no '{prefix}.labels' (not a PRI checkpoint?)")
        if tuple(labels.shape) != tuple(self.labels.shape):
            raise CheckpointError(
                f"checkpoint soft-label table is {tuple(labels.shape)} (images x scales), "
                f"this run needs {tuple(self.labels.shape)}: other training data or scale set"
            )
        self.labels = labels.float().clone()
        self.measured = state[f"{prefix}.measured"].bool().clone()
        if f"{prefix}.refresh_count" in state:
            self.refresh_count = state[f"{prefix}.refresh_count"].clone()
