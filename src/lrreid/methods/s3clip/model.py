"""S3-CLIP as an lrreid Method: SR network S in front of a CLIP video re-ID encoder I.

Sub-modules (the names phases train)::

    sr             S, e.g. SwinIR-S x2, applied per frame (B*T frames per pass)
    image_encoder  I, CLIP ViT image tower + adapters + temporal pooling (clip_reid.ClipVideoEncoder)
    text_encoder   CLIP text tower (always frozen)
    prompts        learnable identity tokens of "A photo of a X X X X person." (CLIP-ReID stage 1)
    reid_head      BNNeck + identity classifiers

Schedules (``schedule`` in the config)::

    two_phase: prompt (prompts; L_i2t + L_t2i)
               -> sr   (S; L_pixel + L_TDP + L_temporal, I frozen)
               -> reid (I's adapters + head; L_id + L_tri + L_v2sce [+ L_i2t], S frozen)
    joint:     prompt -> joint (S, I's adapters and head at once; L_SR + L_ReID)
    with sr.adaptive_scales, a last phase "scale" trains PRI's ScalePredictor (see _scale_step)

In phase ``reid`` only the adapters, the temporal pooling and the parameters named by
``model.unfreeze`` of the image encoder are trained; the pretrained CLIP weights stay frozen.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lrreid.data.records import Record
from lrreid.methods.base import EpochContext, Method, Phase
from lrreid.methods.s3clip import losses as L
from lrreid.methods.s3clip.config import PhaseConfig, S3ClipConfig
from lrreid.methods.s3clip.data import TrackletTriplets, is_lr, lr_grid, usable_tracklets
from lrreid.models.reid.clip_reid import (
    ClipReidHead,
    ClipTextEncoder,
    ClipVideoEncoder,
    IdentityPrompts,
    VideoFeatures,
)
from lrreid.utils.modules import eval_mode


def frozen_call(module: nn.Module, *args):
    """``module(*args)`` with its weights detached: the gradient flows to the inputs only.

    Used for L_TDP, whose paper definition keeps the encoder I frozen even when I is trained
    by other losses in the same step (the joint schedule).
    """
    detached = {name: p.detach() for name, p in module.named_parameters()}
    detached.update(dict(module.named_buffers()))
    return functional_call(module, detached, args)


class S3ClipMethod(Method):
    """SR + CLIP video re-ID, two-phase (or joint) training, cross-view evaluation.

    Build it through :class:`~lrreid.methods.s3clip.S3ClipSpec` from a run config, or directly::

        image, text = build_clip_reid_encoders("tiny", image_size=(64, 32))
        method = S3ClipMethod(sr=build_sr_model("swinir_s"), image_encoder=image, text_encoder=text,
                              train_records=records, num_classes=40, config=S3ClipConfig(), input_size=(64, 32))
    """

    name = "s3clip"
    find_unused_parameters = False

    def __init__(self, *, sr: nn.Module, image_encoder: nn.Module, text_encoder: ClipTextEncoder | None,
                 train_records: Sequence[Record], num_classes: int, config: S3ClipConfig,
                 input_size: tuple[int, int], seed: int = 0, sr_name: str = "sr", clip_name: str = "custom"):
        super().__init__()
        self.cfg = config
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.scale = int(config.sr.scale)
        self.lr_size = lr_grid(self.input_size, self.scale)
        self.seed = seed
        self.sr_name, self.clip_name = sr_name, clip_name

        self.sr = sr
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        # CLIP's text side (prompt phase, L_v2sce/L_i2t); None when I is a plain re-ID encoder
        self.prompts = None if text_encoder is None else IdentityPrompts(
            num_classes, text_encoder.token_embedding.weight.shape[1], text_encoder.context_length,
            template=config.model.prompt_template)
        self.reid_head = ClipReidHead(image_encoder.width, image_encoder.embed_dim, num_classes)

        # Adaptive scale (open question 1): PRI's predictor picks S's factor per LR tracklet.
        self.adaptive_scales = [float(x) for x in config.sr.adaptive_scales] if config.sr.adaptive_scales else None
        if self.adaptive_scales:
            from lrreid.models.predictor import ScalePredictor

            check = getattr(sr, "check_scale", None)
            for scale in self.adaptive_scales:
                if check is not None:
                    check(scale)  # a ConfigError if S cannot do this factor
            self.scale_predictor = ScalePredictor(config.sr.predictor_backbone, num_scales=len(self.adaptive_scales),
                                                  feat_dim=config.sr.predictor_feat_dim,
                                                  pretrained=config.sr.predictor_pretrained)
        self.chosen_scales: list[float] = []  # scales the predictor picked in the last adaptive pass

        self.train_records, self.skipped_empty = usable_tracklets(train_records)
        self.num_classes = num_classes
        # Caches recomputed when needed (never saved: they follow from the weights).
        self._prompt_features: torch.Tensor | None = None
        self._identity_text: torch.Tensor | None = None
        self._triplets: TrackletTriplets | None = None

    # ------------------------------------------------------------------------------ schedule
    def phases(self) -> list[Phase]:
        p = self.cfg.phases
        out = [Phase("prompt", p.prompt.epochs, ("prompts",))] if self.text_encoder is not None else []
        sr_trainable = any(True for _ in self.sr.parameters())
        if self.cfg.schedule == "joint":
            trainable = ("sr", "image_encoder", "reid_head") if sr_trainable else ("image_encoder", "reid_head")
            out.append(Phase("joint", p.joint.epochs, trainable))
        else:
            if sr_trainable:  # an SR model without parameters (bicubic) has nothing to train
                out.append(Phase("sr", p.sr.epochs, ("sr",)))
            out.append(Phase("reid", p.reid.epochs, ("image_encoder", "reid_head")))
        if self.adaptive_scales:
            # Last: the soft labels compare S's outputs through the final encoder.
            out.append(Phase("scale", p.scale.epochs, ("scale_predictor",)))
        return [ph for ph in out if ph.epochs > 0]

    def phase_config(self, phase: Phase) -> PhaseConfig:
        return getattr(self.cfg.phases, phase.name)

    def _trainable_in(self, module_name: str) -> list[nn.Parameter]:
        """Parameters of a trainable sub-module that its phase really trains."""
        if module_name == "image_encoder":
            enc = self.image_encoder
            chosen = {id(p) for p in enc.adapter_parameters()}
            for name, p in enc.named_parameters():
                if any(name == u or name.startswith(u.rstrip(".") + ".") for u in self.cfg.model.unfreeze):
                    chosen.add(id(p))
            return [p for p in enc.parameters() if id(p) in chosen]
        if module_name == "reid_head":
            head = self.reid_head
            fixed = {id(head.bn.bias), id(head.bn_proj.bias)}  # BNNeck has no shift
            return [p for p in head.parameters() if id(p) not in fixed]
        return list(self._submodule(module_name).parameters())

    def apply_phase(self, phase: Phase) -> None:
        super().apply_phase(phase)
        keep = {id(p) for name in phase.trainable for p in self._trainable_in(name)}
        for p in self.parameters():
            if p.requires_grad and id(p) not in keep:
                p.requires_grad_(False)

    def param_groups(self, phase: Phase) -> list[dict]:
        pc = self.phase_config(phase)
        groups = []
        for name in phase.trainable:
            params = self._trainable_in(name)
            if params:
                groups.append({"params": params, "lr": pc.lr, "name": name})
        return groups

    def make_optimizer(self, phase: Phase) -> torch.optim.Optimizer:
        pc = self.phase_config(phase)
        return torch.optim.AdamW(self.param_groups(phase), lr=pc.lr, weight_decay=pc.weight_decay)

    def make_scheduler(self, phase: Phase, optimizer):
        pc = self.phase_config(phase)
        if pc.scheduler == "none" or phase.epochs <= 1:
            return None
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=phase.epochs, eta_min=pc.lr * 0.01)

    # ---------------------------------------------------------------------------------- data
    def train_dataset(self, phase: Phase):
        if phase.name == "prompt":
            return _IndexedPids([r.pid for r in self.train_records])
        if self._triplets is None:
            s = self.cfg.sampling
            self._triplets = TrackletTriplets(
                self.train_records, self.input_size, self.scale, num_frames=s.num_frames,
                sampling=s.train_sampling, lr_views=s.lr_views, lr_degradation=s.lr_degradation,
                natural_lr=s.natural_lr, seed=self.seed)
        return self._triplets

    def on_epoch_start(self, phase: Phase, epoch: int, ctx: EpochContext) -> None:
        if self._triplets is not None:
            self._triplets.epoch = epoch + 1000 * self._phase_index(phase)
        if phase.name == "prompt" and self._prompt_features is None:
            self._prompt_features = self._extract_prompt_features(ctx)
        if phase.name in ("reid", "joint") and self.text_encoder is not None:
            self._identity_text = self.identity_text_features(ctx.device)

    def _phase_index(self, phase: Phase) -> int:
        return [p.name for p in self.phases()].index(phase.name)

    def _extract_prompt_features(self, ctx: EpochContext) -> torch.Tensor:
        """Frozen-encoder features of every training tracklet (CLIP-ReID stage 1 caches them too).

        LR tracklets are bilinearly up-sampled from the LR grid: S is not trained yet at this point.
        """
        from lrreid.methods.s3clip.evaluate import extract_features

        with eval_mode(self), torch.no_grad():  # afterwards the phase's per-module train/eval state again
            flags = [is_lr(r, self.cfg.sampling.lr_views) for r in self.train_records]
            # The projected (CLIP-space) half of the retrieval embedding is what meets the text.
            feats = extract_features(self, self.train_records, ctx, super_resolve=flags, upsampler="bilinear",
                                     output="projected", desc="prompt features")
        return feats.to(ctx.device)

    @torch.no_grad()
    def identity_text_features(self, device: torch.device | None = None, chunk: int = 256) -> torch.Tensor:
        """Text features of every identity's learnt prompt ``[C, embed_dim]`` (frozen, for L_v2sce)."""
        device = device or next(self.text_encoder.parameters()).device
        out = []
        for start in range(0, self.num_classes, chunk):
            pids = torch.arange(start, min(start + chunk, self.num_classes), device=device)
            out.append(self.text_encoder(*self.prompts.embed(pids, self.text_encoder.token_embedding)).float())
        return torch.cat(out)

    # ---------------------------------------------------------------------------- pipelines
    def super_resolve(self, lr_frames: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """S applied per frame: ``[B, T, 3, h, w]`` -> ``[B, T, 3, H, W]`` at the encoder's input size."""
        b, t = lr_frames.shape[:2]
        flat = lr_frames.flatten(0, 1)
        scale = self.scale
        if tuple(flat.shape[-2:]) != self.lr_size and getattr(self.sr, "supported_scales", ()) is None:
            # Frames at their own size (pre_interpolation: none) and a model of any scale: go
            # straight to the encoder's height; the width is matched by the resize below.
            scale = self.input_size[0] / flat.shape[-2]
        if chunk is None or flat.shape[0] <= chunk:
            out = self.sr(flat, scale)
        else:
            out = torch.cat([self.sr(part, scale) for part in flat.split(chunk)])
        if tuple(out.shape[-2:]) != self.input_size:
            out = F.interpolate(out, size=self.input_size, mode="bilinear", align_corners=False)
        return out.reshape(b, t, *out.shape[1:])

    def grid_for(self, scale: float) -> tuple[int, int]:
        """LR size whose x``scale`` output is (about) the encoder input."""
        return max(1, round(self.input_size[0] / scale)), max(1, round(self.input_size[1] / scale))

    def super_resolve_at(self, lr_frames: torch.Tensor, scale: float) -> torch.Tensor:
        """Resize ``[B, T, 3, h, w]`` (bicubic) to the grid of ``scale``, apply S at ``scale``, fit the input size."""
        b, t = lr_frames.shape[:2]
        flat = F.interpolate(lr_frames.flatten(0, 1), size=self.grid_for(scale), mode="bicubic",
                             align_corners=False, antialias=True).clamp(0, 1)
        out = torch.cat([self.sr(part, scale) for part in flat.split(self.cfg.sr.chunk)])
        if tuple(out.shape[-2:]) != self.input_size:
            out = F.interpolate(out, size=self.input_size, mode="bilinear", align_corners=False)
        return out.reshape(b, t, *out.shape[1:])

    def predict_scales(self, lr_frames: torch.Tensor) -> torch.Tensor:
        """Scale-class logits ``[B, N]`` of LR tracklets ``[B, T, 3, h, w]`` (mean over frames)."""
        b, t = lr_frames.shape[:2]
        return self.scale_predictor(lr_frames.flatten(0, 1)).reshape(b, t, -1).mean(1)

    def super_resolve_adaptive(self, lr_frames: torch.Tensor) -> torch.Tensor:
        """Each tracklet super-resolved at the scale the predictor gives it the highest probability."""
        choice = self.predict_scales(lr_frames).argmax(1).tolist()
        out = torch.empty(lr_frames.shape[0], lr_frames.shape[1], 3, *self.input_size,
                          dtype=lr_frames.dtype, device=lr_frames.device)
        for k in sorted(set(choice)):
            rows = [i for i, c in enumerate(choice) if c == k]
            out[rows] = self.super_resolve_at(lr_frames[rows], self.adaptive_scales[k]).to(out.dtype)
        self.chosen_scales.extend(self.adaptive_scales[c] for c in choice)
        return out

    def upsample_bilinear(self, frames: torch.Tensor) -> torch.Tensor:
        """The baseline instead of S: bilinear resize of ``[B, T, 3, h, w]`` to the input size."""
        if tuple(frames.shape[-2:]) == self.input_size:
            return frames
        b, t = frames.shape[:2]
        out = F.interpolate(frames.flatten(0, 1), size=self.input_size, mode="bilinear", align_corners=False)
        return out.reshape(b, t, *out.shape[1:])

    def embed_tracklets(self, frames: torch.Tensor, low_resolution: bool, upsampler: str = "sr",
                        output: str = "embedding") -> torch.Tensor:
        """Features ``[B, D]`` of tracklets; LR ones go through S (or bilinear) first.

        ``output``: ``"embedding"`` (retrieval: both BNNeck features) or ``"projected"`` (CLIP space).
        """
        if low_resolution and upsampler == "sr":
            frames = self.super_resolve(frames, chunk=self.cfg.sr.chunk).clamp(0, 1)
        elif low_resolution and upsampler == "adaptive":
            frames = self.super_resolve_adaptive(frames).clamp(0, 1)
        else:
            frames = self.upsample_bilinear(frames)
        feats = self.image_encoder(frames)
        return feats.projected if output == "projected" else self.reid_head.embedding(feats)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Features of images ``[N, 3, H, W]`` (one-frame tracklets) or tracklets ``[B, T, 3, H, W]`` at input size."""
        if images.dim() == 4:
            images = images.unsqueeze(1)
        return TrackletEmbedder(self.image_encoder, self.reid_head)(self.upsample_bilinear(images))

    # ------------------------------------------------------------------------------- steps
    def training_step(self, batch: dict, phase: Phase, epoch: int) -> dict[str, torch.Tensor]:
        if phase.name == "prompt":
            return self._prompt_step(batch)
        if phase.name == "scale":
            return self._scale_step(batch)
        if phase.name == "sr":
            out = self._sr_losses(batch)
        elif phase.name == "reid":
            with torch.no_grad():  # S frozen
                sr_syn = self.super_resolve(batch["lr_synthetic"])
                sr_nat = self.super_resolve(batch["lr_natural"])
            out = self._reid_losses(batch, sr_syn, sr_nat)
        elif phase.name == "joint":
            sr_out = self._sr_losses(batch)
            sr_nat = self.super_resolve(batch["lr_natural"])
            out = self._reid_losses(batch, sr_out.pop("_sr"), sr_nat)
            out["loss"] = out["loss"] + sr_out.pop("loss")
            out.update(sr_out)
        else:
            raise ValueError(f"S3-CLIP has no phase {phase.name!r}")
        out.pop("_sr", None)
        return out

    def _prompt_step(self, batch: dict) -> dict[str, torch.Tensor]:
        pids = batch["pid"].long()
        feats = self._prompt_features.to(pids.device)[batch["index"].long()]
        text = self.text_encoder(*self.prompts.embed(pids, self.text_encoder.token_embedding))
        scale = self._logit_scale()
        l_i2t = L.image_to_text_loss(feats, text, pids, scale)
        l_t2i = L.text_to_image_loss(feats, text, pids, scale)
        return {"loss": l_i2t + l_t2i, "i2t": l_i2t.detach(), "t2i": l_t2i.detach()}

    def _sr_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        w = self.cfg.loss
        hr, lr = batch["hr"], batch["lr_synthetic"]
        sr = self.super_resolve(lr)
        l_pixel = L.pixel_loss(sr, hr)
        loss = w.pixel * l_pixel
        out = {"pixel": l_pixel.detach()}
        if w.tdp:
            with torch.no_grad():
                target = self.image_encoder(hr).feature
            l_tdp = L.task_driven_perceptual_loss(target, frozen_call(self.image_encoder, sr).feature)
            loss = loss + w.tdp * l_tdp
            out["tdp"] = l_tdp.detach()
        if w.temporal:
            l_temporal = L.temporal_consistency_loss(sr, hr)
            loss = loss + w.temporal * l_temporal
            out["temporal"] = l_temporal.detach()
        out["loss"] = loss
        out["_sr"] = sr
        return out

    def _reid_losses(self, batch: dict, sr_syn: torch.Tensor, sr_nat: torch.Tensor) -> dict[str, torch.Tensor]:
        w = self.cfg.loss
        pids = batch["pid"].long()
        clips = torch.cat([batch["hr"], sr_syn, sr_nat])
        pids3 = pids.repeat(3)
        feats: VideoFeatures = self.image_encoder(clips)
        logits, logits_proj = self.reid_head(feats)
        l_id = (L.cross_entropy(logits, pids3, w.label_smoothing)
                + L.cross_entropy(logits_proj, pids3, w.label_smoothing))
        l_tri = (L.triplet_loss(feats.feature, pids3, margin=w.triplet_margin)
                 + L.triplet_loss(feats.projected, pids3, margin=w.triplet_margin))
        loss = w.id * l_id + w.triplet * l_tri
        out = {"id": l_id.detach(), "triplet": l_tri.detach()}
        if w.v2sce or w.i2t:
            text = self._identity_text
            if text is None or text.device != pids.device:
                text = self._identity_text = self.identity_text_features(pids.device)
            scale = self._logit_scale()
            if w.v2sce:
                l_v2s = L.video_to_text_ce(feats.projected, text, pids3, scale)
                loss = loss + w.v2sce * l_v2s
                out["v2sce"] = l_v2s.detach()
            if w.i2t:
                batch_text = text[pids3]
                l_i2t = (L.image_to_text_loss(feats.projected, batch_text, pids3, scale)
                         + L.text_to_image_loss(feats.projected, batch_text, pids3, scale))
                loss = loss + w.i2t * l_i2t
                out["i2t"] = l_i2t.detach()
        with torch.no_grad():
            out["acc"] = (logits.argmax(1) == pids3).float().mean()
        out["loss"] = loss
        return out

    def _scale_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """Train the scale predictor on soft labels: which factor brings S's output closest to HR in I's space.

        For every candidate scale s the LR tracklet (natural where the person has one) is super-resolved
        at s; d_s is the cosine distance between its retrieval feature and the HR tracklet's; the label
        is softmax(-d / T) over the scales (PRI's soft labels, here from feature distances).
        """
        lr = torch.where(batch["has_natural"].view(-1, 1, 1, 1, 1), batch["lr_natural"], batch["lr_synthetic"])
        with torch.no_grad():
            target = F.normalize(self.reid_head.embedding(self.image_encoder(batch["hr"])).float(), dim=1)
            distances = []
            for scale in self.adaptive_scales:
                feats = self.reid_head.embedding(self.image_encoder(self.super_resolve_at(lr, scale).clamp(0, 1)))
                distances.append(1.0 - (F.normalize(feats.float(), dim=1) * target).sum(1))
            distances = torch.stack(distances, dim=1)  # [B, N]
            labels = (-distances / self.cfg.sr.predictor_temperature).softmax(dim=1)
        logits = self.predict_scales(lr)
        loss = L.soft_cross_entropy(logits, labels)
        with torch.no_grad():
            agree = (logits.argmax(1) == labels.argmax(1)).float().mean()
        return {"loss": loss, "scale_ce": loss.detach(), "scale_agree": agree}

    def _logit_scale(self) -> float:
        if self.cfg.loss.logit_scale is not None:
            return float(self.cfg.loss.logit_scale)
        return float(self.text_encoder.logit_scale.exp().clamp(max=100.0))

    # --------------------------------------------------------------------------- checkpoint
    def inference_parts(self):
        """S at its trained scale, then I and the BNNeck embedding (search, index, export).

        Probes are brought to the LR grid S was trained on (``lr_size``); I normalises inside, so
        the pipeline feeds [0, 1] images; features are compared by cosine, as the evaluation does.
        """
        from lrreid.methods.base import InferenceParts

        return InferenceParts(
            embedder=TrackletEmbedder(self.image_encoder, self.reid_head), sr=self.sr, scales=(self.scale,),
            fixed_scale=self.scale, input_size=self.input_size, lr_size=self.lr_size,
            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), normalize_features=True, video=True,
        )

    def signature(self) -> dict:
        return {"sr_model": self.sr_name, "sr_scale": self.scale, "clip": self.clip_name,
                "input_size": list(self.input_size), "schedule": self.cfg.schedule}

    def derived_settings(self) -> dict:
        """The classes the builder counted in the training tracklets, so the run rebuilds without them."""
        return {"classes": int(self.num_classes)}

    # --------------------------------------------------------------------------- evaluation
    def evaluate(self, splits, ctx: EpochContext):
        from lrreid.methods.s3clip.evaluate import evaluate_cross_view

        return evaluate_cross_view(self, splits, ctx)


class TrackletEmbedder(nn.Module):
    """I, then the BNNeck embedding: images ``[B, 3, H, W]`` (one-frame tracklets) or tracklets
    ``[B, T, 3, H, W]`` in [0, 1] at the input size -> retrieval features ``[B, D]``.

    Built on demand around the method's own modules (not a sub-module: the state dict stays as is).
    """

    def __init__(self, image_encoder: nn.Module, reid_head: nn.Module):
        super().__init__()
        self.image_encoder, self.reid_head = image_encoder, reid_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(1)
        return self.reid_head.embedding(self.image_encoder(x))


class _IndexedPids(torch.utils.data.Dataset):
    """Items ``{"index", "pid"}`` (the prompt stage reads cached features by index)."""

    def __init__(self, pids: Sequence[int]):
        self.pids = list(pids)

    def __len__(self) -> int:
        return len(self.pids)

    def __getitem__(self, i: int) -> dict:
        return {"index": i, "pid": self.pids[i]}

