"""S3-CLIP's own config sections (validated by lrreid.config through :class:`S3ClipConfig`).

A run config (see configs/s3clip_synthetic_cpu.yaml)::

    method: s3clip
    schedule: two_phase            # two_phase (prompt -> sr -> reid) | joint (prompt -> sr+reid at once)
    model:    {clip: ViT-B-16, pretrained: ../shared/weights/ViT-B-16.pt, adapter_dim: 64, pooling: mean}
    sr:       {model: swinir_s, scale: 2, pretrained: null, pre_interpolation: bicubic}
    sampling: {num_frames: 8, train_sampling: random, lr_degradation: bicubic}
    loss:     {pixel: 1, tdp: 1, temporal: 1, id: 1, triplet: 1, v2sce: 1}
    phases:   {prompt: {epochs: 60, lr: 3.5e-4}, sr: {epochs: 20, lr: 2e-4}, reid: {epochs: 60, lr: 1e-4}}
    crossview: {directions: [[aerial, ground], [ground, aerial], [aerial, aerial]], baseline: true}

The ablations of the paper are switches: ``loss.temporal: 0`` (no L_temporal), ``loss.tdp: 0``
(no L_TDP), ``schedule: joint`` (S and I trained at once).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lrreid.config import weights_path


@dataclass
class ModelConfig:
    """The ReID encoder I: CLIP image tower + adapters, CLIP text tower + identity prompts."""

    # I: "clip" (the paper's CLIP image tower + adapters, sized by ``clip``) or a re-ID encoder of
    # lrreid.models.reid (osnet_omz_x1_0, osnet_x0_25, ...): per-frame embedding + temporal pooling,
    # its weights from ``pretrained`` (an OpenVINO IR .xml or torchreid .pth); no text tower then.
    encoder: str = "clip"
    clip: str = "ViT-B-16"  # size in lrreid.models.reid.clip_reid.CLIP_ARCHS ("ViT-B-16" | "tiny")
    pretrained: str | None = weights_path()  # CLIP file (TorchScript ViT-B-16.pt or a state dict) or the encoder's file; None: random init
    adapter_dim: int = 64  # bottleneck width of every adapter
    adapter_layers: int | None = None  # adapters in the last N blocks (None: all)
    temporal_adapter: bool = True  # the across-frames adapter before every adapted block
    temporal_kernel: int = 3
    pooling: Literal["mean", "attention"] = "mean"  # temporal pooling of frame features
    unfreeze: list[str] = field(default_factory=list)  # encoder parameter prefixes also trained in phase 2 (e.g. "visual.ln_post", "visual")
    prompt_template: str = "A photo of a X X X X person."

    def __post_init__(self):
        if self.adapter_dim < 1:
            raise ValueError(f"adapter_dim must be >= 1, got {self.adapter_dim}")


@dataclass
class SRConfig:
    """The super-resolution network S (any name of lrreid.models' SR registry)."""

    model: str = "swinir_s"  # swinir_s | carn_m | bicubic | ...
    scale: int = 2  # S's up-scaling factor; the LR grid is input_size / scale
    pretrained: str | None = weights_path()  # weights file for S (lrreid.models.weights formats)
    args: dict[str, Any] = field(default_factory=dict)  # extra constructor arguments of the SR model
    # bicubic: LR frames are resized (bicubic) to the LR grid before S, so S's output is the encoder
    # input (the paper's pipeline).  none: S runs on each tracklet at its stored size and its output
    # is resized (bilinear) to the encoder input (evaluation only; training always uses the grid).
    pre_interpolation: Literal["bicubic", "none"] = "bicubic"
    chunk: int = 64  # frames per SR forward pass at evaluation (memory)
    # Adaptive scale (beyond the paper, its open question 1): PRI's ScalePredictor chooses S's factor
    # per LR tracklet among these (S must do them all: carn_m, metasr_rdn, swinir with
    # pre_upsample).  None: always ``scale``.
    adaptive_scales: list[float] | None = None
    predictor_backbone: str = "resnet18"  # timm CNN of the ScalePredictor
    predictor_pretrained: str | None = weights_path()
    predictor_feat_dim: int = 128
    predictor_temperature: float = 0.05  # soft labels softmax(-d_s / T), d_s = cosine distance to the HR feature

    def __post_init__(self):
        if self.scale < 1:
            raise ValueError(f"sr.scale must be >= 1, got {self.scale}")
        if self.adaptive_scales is not None and (len(self.adaptive_scales) < 2 or min(self.adaptive_scales) < 1):
            raise ValueError(f"sr.adaptive_scales needs at least two scales >= 1, got {self.adaptive_scales}")
        if self.predictor_temperature <= 0:
            raise ValueError("sr.predictor_temperature must be > 0")


@dataclass
class SamplingConfig:
    """Which frames and which tracklets make a training triplet."""

    num_frames: int = 8  # T frames per training tracklet
    train_sampling: Literal["evenly", "random"] = "random"
    eval_frames: int = 8
    eval_sampling: Literal["evenly", "all"] = "evenly"
    lr_views: list[str] = field(default_factory=lambda: ["aerial"])  # views that are low resolution (super-resolved)
    # How the synthetic LR copy is made: "bicubic" (paper), or a lrreid.data.degradations spec for
    # degradation-aware training (open question 2), e.g. "blur+noise+jpeg"; the result is resized
    # (bicubic) to the LR grid.
    lr_degradation: Any = "bicubic"
    natural_lr: bool = True  # add a genuine LR tracklet of the same person to each triplet
    pseudo_tracklets: bool = False  # image datasets (CAVIAR): one tracklet per person and camera
    # Evaluation only: cut each test pseudo-tracklet into tracklets of at most this many frames
    # (1 = every image is its own query/gallery item, the single-image LR probe setting); None: whole.
    eval_tracklet_frames: int | None = None
    view_map: dict[str, str] = field(default_factory=lambda: {"near": "ground", "far": "aerial"})

    def __post_init__(self):
        if self.num_frames < 1 or self.eval_frames < 1:
            raise ValueError("num_frames and eval_frames must be >= 1")
        if self.eval_tracklet_frames is not None and int(self.eval_tracklet_frames) < 1:
            raise ValueError(f"sampling.eval_tracklet_frames must be >= 1 or null, got {self.eval_tracklet_frames!r}")


@dataclass
class LossConfig:
    """Loss weights (0 switches a loss off) and their parameters."""

    pixel: float = 1.0  # L_pixel (phase 1)
    tdp: float = 1.0  # L_TDP, task-driven perceptual (phase 1)
    temporal: float = 1.0  # L_temporal (phase 1)
    id: float = 1.0  # identity CE (phase 2)
    triplet: float = 1.0  # batch-hard triplet (phase 2)
    v2sce: float = 1.0  # video-to-text CE against all identities' prompts (phase 2)
    i2t: float = 0.0  # in-batch image<->text contrastive (L_i2t + L_t2i) also in phase 2
    label_smoothing: float = 0.1
    triplet_margin: float = 0.3
    logit_scale: float | None = None  # cosine-similarity scale of the text losses (None: CLIP's own, 100)


@dataclass
class PhaseConfig:
    epochs: int = 1
    lr: float = 1e-4
    weight_decay: float = 1e-4
    scheduler: Literal["cosine", "none"] = "cosine"


@dataclass
class PhasesConfig:
    """Epochs and optimiser of each phase; a phase with 0 epochs is skipped."""

    prompt: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=2, lr=3.5e-4))
    sr: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=2, lr=2e-4))
    reid: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=2, lr=1e-4))
    joint: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=2, lr=1e-4))
    scale: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=2, lr=1e-3))  # only with sr.adaptive_scales


@dataclass
class CrossViewConfig:
    """What ``lrreid evaluate`` reports for S3-CLIP."""

    # (query view, gallery view) pairs; "camera groups" can be any views the dataset has.
    directions: list[list[str]] = field(default_factory=lambda: [["aerial", "ground"], ["ground", "aerial"],
                                                                 ["aerial", "aerial"]])
    sr_query: bool = True  # super-resolve low-resolution query tracklets
    sr_gallery: bool = True  # ... and low-resolution gallery tracklets
    baseline: bool = True  # also a row with bilinear up-sampling instead of S
    robustness: Any = "blur+jpeg"  # degradation applied to the queries for the robustness rows (null: none)
    figure_tracklets: int = 3  # tracklets shown in sr_examples.png (0: no picture)
    flicker: bool = True  # measure S's flicker against bilinear on the first evaluated split (a note in the report)
    max_queries: int | None = None  # cap per direction (quick runs)


@dataclass
class S3ClipConfig:
    """The top-level sections S3-CLIP adds to a run config."""

    schedule: Literal["two_phase", "joint"] = "two_phase"
    model: ModelConfig = field(default_factory=ModelConfig)
    sr: SRConfig = field(default_factory=SRConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    phases: PhasesConfig = field(default_factory=PhasesConfig)
    crossview: CrossViewConfig = field(default_factory=CrossViewConfig)
