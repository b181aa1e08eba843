"""PRI's own config sections (``model``, ``loss``, ``schedule``, ``triplets``, ``inference``).

Defaults are the paper's (Han et al., ECCV 2020, Sec. 4.1): ResNet-50 for P and F, Meta-RDN for G,
scales {1, 2, 3, 4}, alpha 1, beta 0.01, phi 10, lambda 1, gamma 1, omega 1, Adam (0.9, 0.999) with
learning rates 0.01 (backbones) / 0.1 (added layers), decayed tenfold after pre-training -- except
the soft labels' sharpness: ``loss.label_norm: std, label_temperature: 0.5`` by default, the paper's
Eq. 3 with ``label_norm: none, label_temperature: 1`` (docs/pri.md, "Soft labels").  A YAML
file only lists what differs; ``lrreid.config`` rejects unknown keys and wrong types.

Every ablation of the paper is one setting:

==========================  =====================================
ablation (paper)            setting
==========================  =====================================
one-hot instead of soft     ``loss.soft_labels: false``
update frequency omega      ``loss.omega`` (0: random per epoch)
regulatory factor gamma     ``loss.gamma`` (odd, or 0)
(label sharpness, lrreid)   ``loss.label_norm``, ``loss.label_temperature``
no pre-training             ``schedule.pretrain_epochs: 0``
only pre-training           ``schedule.joint_epochs: 0``
remove L_sr/L_id/L_tri/L_p  ``loss.sr_weight/alpha/beta/lambda_p: 0``
==========================  =====================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lrreid.config import weights_path
from lrreid.methods.pri.soft_labels import check_gamma


@dataclass
class PRIModelConfig:
    """The three networks: re-ID module F, scale predictor P, SR module G."""

    backbone: str = "resnet50"  # F's backbone (lrreid.models.backbones)
    pretrained: str | None = weights_path("timm")  # F's backbone weights: null (random) | "timm" | a file path
    feat_dim: int = 512  # F's feature size after the 1x1 reduction (a re-ID encoder's own head keeps its size)
    reid_head: str = "auto"  # auto: a re-ID encoder backbone (osnet_*) keeps its embedding head | new | encoder
    reid_neck: str = "auto"  # BN-neck before F's classifier: auto (yes for a new head) | bn | none
    predictor_backbone: str | None = None  # P's backbone; null = same as F's
    predictor_pretrained: str | None = weights_path("same")  # "same" = as ``pretrained``; null | "timm" | path
    predictor_feat_dim: int = 512
    sr: str = "metasr_rdn"  # G: metasr_rdn | carn_m | bicubic | swinir_s (lrreid.models.build_sr_model)
    sr_args: dict[str, Any] = field(default_factory=lambda: {"G0": 64, "D": 16, "C": 8, "G": 64})
    sr_weights: str | None = weights_path()  # a weight file for G (lrreid.models.weights.load_weights)
    scales: list[int] = field(default_factory=lambda: [1, 2, 3, 4])  # the N alternative scale factors

    def __post_init__(self):
        if len(self.scales) < 2 or sorted(set(self.scales)) != list(self.scales) or min(self.scales) < 1:
            raise ValueError(f"model.scales must be >= 2 distinct increasing integers >= 1, got {self.scales}")
        if self.feat_dim < 1 or self.predictor_feat_dim < 1:
            raise ValueError("model.feat_dim and model.predictor_feat_dim must be >= 1")
        if self.reid_head not in ("auto", "new", "encoder"):
            raise ValueError(f"model.reid_head must be auto, new or encoder, got {self.reid_head!r}")
        if self.reid_neck not in ("auto", "bn", "none"):
            raise ValueError(f"model.reid_neck must be auto, bn or none, got {self.reid_neck!r}")


@dataclass
class PRILossConfig:
    """L = sr_weight * L_sr + alpha * L_id + beta * L_tri + lambda_p * L_p (Eq. 6); a weight of 0 removes a loss."""

    sr_weight: float = 1.0  # L_sr, L1 between G_{r_sl}(x_sl) and x_h (Eq. 2)
    alpha: float = 1.0  # L_id, identity cross-entropy on x_rp, x_sl, x_h
    beta: float = 0.01  # L_tri, batch-hard triplet loss
    margin: float = 10.0  # phi, the triplet margin (on raw, unnormalised features)
    lambda_p: float = 1.0  # L_p, soft cross-entropy of P against the dynamic soft labels (Eq. 4)
    gamma: int = 1  # regulatory factor of Eq. 3 (odd, or 0 = uniform labels)
    # Eq. 3's centred distances divided per image by: std (their spread over the scales; lrreid's default)
    # | mean (their mean) | none (the paper), then by label_temperature.  none + 1.0 is the paper's Eq. 3;
    # its sharpness depends on F's feature scale, and with lrreid's F the labels come out flat
    # (docs/pri.md, "Soft labels", has the measurements behind std + 0.5)
    label_norm: Literal["none", "mean", "std"] = "std"
    label_temperature: float = 0.5
    # what Eq. 3's d_i measures: distance (the paper: to the person's own HR image) | margin (lrreid:
    # that distance minus the one to the nearest other person's HR image in the batch, so the label
    # rewards the scale that ranks the true match first; docs/pri.md, "Soft labels")
    label_target: Literal["distance", "margin"] = "distance"
    omega: int = 1  # soft labels re-measured every omega joint epochs; 0 = random decision per epoch
    soft_labels: bool = True  # false: one-hot labels at the best scale (the paper's ablation)
    label_smoothing: float = 0.0  # of L_id (the paper uses none)
    hard_mining: bool = True  # batch-hard triplets (false: all valid triplets)
    random_erasing: float = 0.0  # probability of random erasing on F's training inputs (the paper uses none)
    # How L_sr's input x_sl is made from x_h: "bicubic" (the paper's bicubic down-sampling), or a
    # lrreid.data.degradations spec applied after it, one random draw per image (degradation-aware G,
    # for natural LR probes that are blurred, noisy and compressed, not bicubic), e.g. "blur+noise+jpeg"
    sr_degradation: Any = "bicubic"

    def __post_init__(self):
        check_gamma(self.gamma)
        if self.sr_degradation not in (None, "bicubic"):
            from lrreid.data.degradations import build_degradation

            try:
                build_degradation(self.sr_degradation)
            except Exception as exc:  # ConfigError names the bad step
                raise ValueError(f"loss.sr_degradation: {exc}") from None
        if self.label_target == "margin" and self.label_norm == "mean":
            raise ValueError("loss.label_norm: mean divides by the mean d_i, which is about 0 for "
                             "label_target: margin (a difference of distances); use std or none")
        if not self.label_temperature > 0:
            raise ValueError(f"loss.label_temperature must be > 0, got {self.label_temperature}")
        if self.omega < 0:
            raise ValueError(f"loss.omega must be >= 0, got {self.omega}")
        if not 0.0 <= self.random_erasing <= 1.0:
            raise ValueError(f"loss.random_erasing is a probability in [0, 1], got {self.random_erasing}")
        for name in ("sr_weight", "alpha", "beta", "lambda_p"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class PRIScheduleConfig:
    """Pre-training (T1 epochs, no L_p, random scales) then joint training (T2 epochs)."""

    pretrain_epochs: int = 20  # T1
    joint_epochs: int = 60  # T2
    lr_backbone: float = 0.01  # backbones of F and P (paper)
    lr_head: float = 0.1  # layers added on top of the backbones (paper)
    lr_sr: float = 1e-4  # G (the paper does not say; 1e-4 is Meta-SR/RDN's own Adam rate)
    joint_lr_factor: float = 0.1  # learning rates are multiplied by this after pre-training (paper: 0.1)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 5e-4
    warmup_epochs: int = 0  # linear warm-up at the start of each phase (0: none, as the paper)
    # pri: the method.  finetune: the "fine-tuned, no SR" baseline -- F alone (identity + triplet on x_l
    # resized to F's input and x_h; no G, no P), finetune_epochs epochs at lr_backbone / lr_head, on the
    # same training persons; evaluated on bicubically resized probes (docs/pri.md, "Baselines")
    mode: Literal["pri", "finetune"] = "pri"
    finetune_epochs: int | None = None  # null: pretrain_epochs + joint_epochs
    # with `lrreid train --each-split`: also train the finetune baseline per split (split<i>/finetune/)
    # and put its row in the split's and the combined table
    baseline_finetune: bool = False

    def __post_init__(self):
        if self.pretrain_epochs < 0 or self.joint_epochs < 0:
            raise ValueError("schedule.pretrain_epochs and schedule.joint_epochs must be >= 0")
        if self.finetune_epochs is not None and self.finetune_epochs < 1:
            raise ValueError(f"schedule.finetune_epochs must be >= 1 (or null), got {self.finetune_epochs}")
        if self.pretrain_epochs + self.joint_epochs == 0:
            raise ValueError("schedule: pretrain_epochs + joint_epochs is 0, nothing to train")


@dataclass
class PRITripletsConfig:
    """How training triplets {x_h, x_l, x_sl} are made from the training records."""

    lr_cameras: list[int] | None = None  # cameras whose images are x_l; null = auto (see docs/pri.md)
    # x_l's size in training: "native" keeps every LR image at its own size (padded into a canvas for
    # batching, cropped back before SR: what MLR data needs, whose factors 2/3/4 differ in size);
    # null resizes all to the median LR size (one SR call per batch); or a fixed (h, w)
    lr_size: tuple[int, int] | Literal["native"] | None = None
    hr_size: tuple[int, int] | None = None  # (h, w) canvas of x_h (the SR target); null = median HR size
    flip: bool = True  # flip x_h and x_l (and so x_sl) together with probability 0.5
    size_sample: int = 2000  # at most this many image headers are read to measure median sizes
    # share of the training persons (with both LR and HR images) held out of training: P's agreement
    # with their soft labels is logged every joint epoch (docs/pri.md, "Soft labels"); 0 = none (the paper)
    holdout: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"triplets.holdout is a share of the training persons in [0, 1), got {self.holdout}")


PREDICTORS = ("nosr", "nosr_net", "fixed", "size", "ideal", "adaptive", "mirror", "fused")  # the rows inference.predictors can ask for


@dataclass
class PRIInferenceConfig:
    """Evaluation of the scale predictors (PRI.md Table 2) and picture options."""

    size_rule: Literal["sqrt", "ratio"] = "sqrt"  # size-based predictor: nearest scale to sqrt(R/r) or to R/r
    min_probe_side: int = 4  # probes with a shorter side (px) are too small to super-resolve
    small_probes: Literal["error", "skip"] = "error"  # what to do with them: stop with one line, or skip and count
    overlapping_splits: Literal["skip", "error", "keep"] = "skip"  # splits whose test images were training images
    batch_size: int = 64
    # rows of Table 2: nosr (F on the probe resized bicubically, no G), fixed, size, ideal, adaptive; and
    # nosr_net (lrreid): no G either, but the probe enlarged by F's own input resize (bilinear), the one F
    # is trained with and search runs -- PIL's bicubic is a resize F never saw in training, and which of
    # the two suits F depends on the data (docs/pri.md, "Baselines"); with a G that has no x1 (CARN-M)
    # this row equals fixed x1, and for the fine-tuned baseline it is its own second row; and
    # mirror (lrreid): the ideal row's noise floor, an oracle choosing per probe between the best fixed
    # scale and the same probe mirrored -- a choice that carries no scale (docs/pri.md, "Evaluation"); and
    # fused (lrreid): no choice at all, the probe's features at every scale averaged, once uniformly and once
    # weighted by P's probabilities -- N passes a probe instead of PRI's one
    predictors: list[str] = field(default_factory=lambda: ["nosr", "fixed", "size", "ideal", "adaptive"])

    def __post_init__(self):
        unknown = [p for p in self.predictors if p not in PREDICTORS]
        if unknown:
            raise ValueError(f"inference.predictors: unknown {', '.join(map(repr, unknown))}; "
                             f"expected some of {', '.join(PREDICTORS)}")


@dataclass
class PRIConfig:
    """All PRI sections, as they appear at the top level of a run config."""

    model: PRIModelConfig = field(default_factory=PRIModelConfig)
    loss: PRILossConfig = field(default_factory=PRILossConfig)
    schedule: PRIScheduleConfig = field(default_factory=PRIScheduleConfig)
    triplets: PRITripletsConfig = field(default_factory=PRITripletsConfig)
    inference: PRIInferenceConfig = field(default_factory=PRIInferenceConfig)
