"""The PRI method (Han et al., ECCV 2020): predictor P, SR module G and re-ID module F trained together.

Training step (joint phase), for a batch of triplets {x_h, x_l, x_sl}::

    r_sl ~ scales (one per batch)      x_sl = bicubic_downsample(x_h, r_sl)
    L_sr  = |G_{r_sl}(x_sl) - x_h|_1                                   (Eq. 2)
    p     = softmax(P(x_l))            r_p = argmax p                   (Eq. 1)
    x_rp  = G_{r_p}(x_l)               (per image, its own predicted scale)
    L_id  = CE(F(x_rp), F(G(x_sl)), F(x_h))     L_tri = batch-hard triplet on the same features
    l     = dynamic soft label of x_l  (Eq. 3; re-measured every omega epochs, without gradient)
    L_p   = -sum l log p                                                 (Eq. 4; updates P only)
    L     = L_sr + alpha L_id + beta L_tri + lambda L_p                  (Eq. 6)

Pre-training is the same without P and L_p: x_l is super-resolved by one random scale per batch.
Every image F or P sees is first resized to ``input_size`` (bilinear, antialiased when shrinking)
and normalised with the ImageNet mean/std.  The choices the paper leaves open are listed in
docs/pri.md with the setting that changes each.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lrreid import losses
from lrreid.data.augment import random_erasing
from lrreid.data.degradations import bicubic_downsample
from lrreid.errors import ConfigError
from lrreid.methods.base import EpochContext, EvalReport, InferenceParts, Method, Phase
from lrreid.methods.pri.config import PRIInferenceConfig, PRILossConfig, PRIScheduleConfig
from lrreid.methods.pri.soft_labels import (
    SoftLabelTable,
    best_ranking_scale,
    label_statistics,
    margin_distances,
    one_hot_labels,
    scale_factor_metric,
    should_refresh,
)
from lrreid.models.net_input import net_input, resize_for_net
from lrreid.utils.logging import get_logger
from lrreid.utils.modules import eval_mode

log = get_logger("methods.pri")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PRETRAIN, JOINT, FINETUNE = "pretrain", "joint", "finetune"


def degrade_batch(images: torch.Tensor, spec, seed: int) -> torch.Tensor:
    """``images`` [B, 3, h, w] in [0, 1], each degraded by a ``lrreid.data.degradations`` spec with its
    own draw from ``seed`` (as 8-bit images, as a camera gives them) and brought back to ``h x w``."""
    import numpy as np
    from PIL import Image

    from lrreid.data.degradations import build_degradation

    degrade = build_degradation(spec)
    rng = np.random.default_rng(seed)
    h, w = images.shape[-2:]
    out = []
    for img in images.detach().float().clamp(0, 1).cpu():
        pil = Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        pil = degrade(pil, rng)
        if pil.size != (w, h):
            pil = pil.resize((w, h), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255).permute(2, 0, 1))
    return torch.stack(out).to(device=images.device, dtype=images.dtype)


class PRIMethod(Method):
    """PRI as an lrreid method: sub-modules ``sr_net`` (G), ``reid_net`` (F), ``scale_predictor`` (P).

    Built by :class:`~lrreid.methods.pri.PRISpec` from a run config; the constructor takes the
    three networks and plain settings so tests can build it from tiny parts.

    Inference API (also used by search/export)::

        probs = method.predict_scales(lr_images)        # [B, N]
        sr = method.super_resolve(lr_images, 2)         # G_2(x)
        feats = method.embed(images)                    # F's retrieval features
    """

    name = "pri"

    def __init__(
        self,
        *,
        sr_net: nn.Module,
        reid_net: nn.Module,
        scale_predictor: nn.Module,
        scales: Sequence[int],
        input_size: Sequence[int],
        train_dataset: torch.utils.data.Dataset | None,
        num_lr_images: int,
        hr_mean_area: float,
        loss: PRILossConfig | None = None,
        schedule: PRIScheduleConfig | None = None,
        inference: PRIInferenceConfig | None = None,
        train_paths: Sequence[str] = (),
        description: dict | None = None,
        heldout_dataset: torch.utils.data.Dataset | None = None,
    ):
        super().__init__()
        self.sr_net = sr_net
        self.reid_net = reid_net
        self.scale_predictor = scale_predictor
        self.scales = [int(s) for s in scales]
        if getattr(scale_predictor, "num_scales", len(self.scales)) != len(self.scales):
            raise ConfigError(
                f"scale predictor has {scale_predictor.num_scales} classes but model.scales has {len(self.scales)}"
            )
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self._train_dataset = train_dataset
        self.loss_cfg = loss or PRILossConfig()
        self.schedule = schedule or PRIScheduleConfig()
        self.inference = inference or PRIInferenceConfig()
        self.soft_labels = SoftLabelTable(num_lr_images, len(self.scales))
        self.train_paths = frozenset(str(p) for p in train_paths)
        self.description = dict(description or {})
        # R of the size-based predictor: mean area (h*w) of the HR training images; a buffer so the
        # checkpoint carries it and `lrreid evaluate` does not need to re-read the training images.
        self.register_buffer("hr_mean_area", torch.tensor(float(hr_mean_area), dtype=torch.float64))
        # F's own input convention when its weights brought one (a re-ID encoder's file), else ImageNet's
        spec = getattr(reid_net, "input_spec", None)
        mean, std = (spec.mean, spec.std) if spec is not None else (IMAGENET_MEAN, IMAGENET_STD)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self._refresh_epoch = False
        # held-out training persons (triplets.holdout): never trained on, P's agreement with their labels is logged
        self._heldout_dataset = heldout_dataset
        self._heldout_items: list | None = None
        self._epoch_label_hits = [0, 0]  # label argmax == best-ranking scale, images measured this epoch
        for s in self.scales:
            self._check_sr_scale(s)
        self.last_evaluation = None  # detailed result of the last evaluate() (for pictures)
        self.training_note: str | None = None  # what the training data is, logged once when training starts

    # ------------------------------------------------------------------------------------------ G, F, P
    def _sr_supports(self, scale: int) -> bool:
        allowed = getattr(self.sr_net, "supported_scales", None)
        return allowed is None or any(abs(float(scale) - float(a)) < 1e-9 for a in allowed)

    def _check_sr_scale(self, scale: int) -> None:
        if scale != 1 and not self._sr_supports(scale):
            allowed = ", ".join(f"x{a:g}" for a in self.sr_net.supported_scales)
            raise ConfigError(
                f"model.scales contains {scale} but SR model {getattr(self.sr_net, 'name', type(self.sr_net).__name__)!r} "
                f"does {allowed} only"
            )

    def super_resolve(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        """G_scale(x); scale 1 is the identity for SR networks that have no x1 (e.g. CARN-M)."""
        if scale == 1 and not self._sr_supports(1):
            return x
        return self.sr_net(x, scale)

    def net_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] of any size -> F/P's input: resized to ``input_size`` and normalised
        (:func:`lrreid.models.net_input.net_input`, what search and the ONNX graphs run too)."""
        return net_input(x, self.input_size, self.pixel_mean, self.pixel_std)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """F's retrieval features (after the BN-neck, eval mode) of images in [0, 1], any size."""
        with eval_mode(self.reid_net):
            return self.reid_net(self.net_input(images)).float()

    @torch.no_grad()
    def predict_scales(self, lr_images: torch.Tensor) -> torch.Tensor:
        """P's probabilities ``[B, N]`` over ``self.scales`` for LR images in [0, 1]."""
        with eval_mode(self.scale_predictor):
            return self.scale_predictor(self.net_input(lr_images)).float().softmax(dim=1)

    def inference_parts(self) -> InferenceParts:
        """F, G and P with the settings that decide their features (search, index, export)."""
        return InferenceParts(
            embedder=self.reid_net, sr=self.sr_net, predictor=self.scale_predictor, scales=tuple(self.scales),
            input_size=self.input_size, mean=tuple(self.pixel_mean.flatten().tolist()),
            std=tuple(self.pixel_std.flatten().tolist()), min_probe_side=self.inference.min_probe_side,
        )

    def signature(self) -> dict:
        return {"scales": list(self.scales), "input_size": list(self.input_size), **self.description}

    def derived_settings(self) -> dict:
        """What the builder read off the training images, so the run rebuilds without them."""
        summary = getattr(self, "training_summary", None) or {}
        return {"classes": int(self.reid_net.num_classes), "lr_images": len(self.soft_labels),
                "hr_mean_area": float(self.hr_mean_area),
                **{k: summary[k] for k in ("lr_size", "hr_size") if k in summary}}

    # ------------------------------------------------------------------------------------------ schedule
    @property
    def finetune_only(self) -> bool:
        """The "fine-tuned, no SR" baseline (``schedule.mode: finetune``): F alone, no G, no P."""
        return self.schedule.mode == "finetune"

    def phases(self) -> list[Phase]:
        if self.finetune_only:
            epochs = self.schedule.finetune_epochs or (self.schedule.pretrain_epochs + self.schedule.joint_epochs)
            return [Phase(FINETUNE, epochs, trainable=("reid_net",))]
        out = []
        if self.schedule.pretrain_epochs > 0:
            out.append(Phase(PRETRAIN, self.schedule.pretrain_epochs, trainable=("sr_net", "reid_net")))
        if self.schedule.joint_epochs > 0:
            out.append(Phase(JOINT, self.schedule.joint_epochs, trainable=("sr_net", "reid_net", "scale_predictor")))
        return out

    def param_groups(self, phase: Phase) -> list[dict]:
        """Backbones at ``lr_backbone``, added layers at ``lr_head``, G at ``lr_sr``; x joint_lr_factor in the joint phase."""
        factor = self.schedule.joint_lr_factor if phase.name == JOINT else 1.0
        sched = self.schedule
        groups: list[dict] = []

        def add(name: str, params, lr: float) -> None:
            params = [p for p in params if p.requires_grad]
            if params:
                groups.append({"params": params, "lr": lr * factor, "name": name})

        if "sr_net" in phase.trainable:
            add("sr_net", self.sr_net.parameters(), sched.lr_sr)
        for attr in ("reid_net", "scale_predictor"):
            if attr not in phase.trainable:
                continue
            module = getattr(self, attr)
            if hasattr(module, "backbone_parameters"):
                add(f"{attr}.backbone", module.backbone_parameters(), sched.lr_backbone)
                add(f"{attr}.head", module.head_parameters(), sched.lr_head)
            else:
                add(attr, module.parameters(), sched.lr_head)
        return groups

    def make_optimizer(self, phase: Phase) -> torch.optim.Optimizer:
        groups = self.param_groups(phase)
        if not groups:
            raise ConfigError(f"PRI phase {phase.name!r} has nothing to train")
        return torch.optim.Adam(groups, betas=tuple(self.schedule.betas), weight_decay=self.schedule.weight_decay)

    def make_scheduler(self, phase: Phase, optimizer: torch.optim.Optimizer):
        warm = self.schedule.warmup_epochs
        if warm <= 0:
            return None
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: min(1.0, (e + 1) / (warm + 1)))

    def train_dataset(self, phase: Phase) -> torch.utils.data.Dataset:
        if self._train_dataset is None:
            raise ConfigError("this PRI model was built without training data")
        if self.training_note:
            log.info("%s", self.training_note)
            self.training_note = None  # once, not per phase
        return self._train_dataset

    def on_epoch_start(self, phase: Phase, epoch: int, ctx: EpochContext) -> None:
        self._refresh_epoch = False
        self._epoch_label_hits = [0, 0]
        if phase.name != JOINT or self.loss_cfg.lambda_p <= 0:
            return
        self._refresh_epoch = should_refresh(epoch, self.loss_cfg.omega, ctx.rng)
        if self._refresh_epoch:
            self.soft_labels.refresh_count += 1
            ctx.logger.debug("PRI: re-measuring dynamic soft labels in joint epoch %d", epoch + 1)

    # ------------------------------------------------------------------------------------------ step
    def training_step(self, batch: dict, phase: Phase, epoch: int) -> dict[str, torch.Tensor]:
        if phase.name == FINETUNE:
            return self._finetune_step(batch)
        cfg = self.loss_cfg
        x_l, x_h, pids = batch["x_l"], batch["x_h"], batch["pid"].long()
        lr_hw = batch.get("lr_hw")
        out: dict[str, torch.Tensor] = {}
        zero = x_h.new_zeros(())

        # L_sr: G recovers x_h from its own bicubic down-sampling x_sl (Eq. 2).
        sr_scales = [s for s in self.scales if self._sr_supports(s)] or self.scales
        r_sl = sr_scales[int(torch.randint(len(sr_scales), ()))]
        x_sl = bicubic_downsample(x_h, r_sl)
        if self.loss_cfg.sr_degradation not in (None, "bicubic"):
            x_sl = degrade_batch(x_sl, self.loss_cfg.sr_degradation, int(torch.randint(2**31 - 1, ())))
        sr_sl = self.super_resolve(x_sl, r_sl)
        loss_sr = zero
        if cfg.sr_weight > 0 and sr_sl.requires_grad:
            target = x_h if sr_sl.shape[-2:] == x_h.shape[-2:] else resize_for_net(x_h, sr_sl.shape[-2:])
            loss_sr = losses.l1_loss(sr_sl, target)

        loss_p = zero
        if phase.name == JOINT:
            x_rp_net, loss_p, pred_idx = self._joint_lr_branch(x_l, x_h, batch["lr_index"], lr_hw, pids)
            scale_values = torch.tensor(self.scales, dtype=torch.float32, device=pred_idx.device)
            out["pred_scale"] = scale_values[pred_idx].mean()  # mean predicted scale, for the log
        else:
            r = self.scales[int(torch.randint(len(self.scales), ()))]
            x_rp_net = self.lr_net_inputs(x_l, lr_hw, r)

        # L_id and L_tri on F(x_rp), F(G(x_sl)), F(x_h).
        loss_id = loss_tri = zero
        if cfg.alpha > 0 or cfg.beta > 0:
            images = torch.cat([x_rp_net, self.net_input(sr_sl), self.net_input(x_h)])
            if cfg.random_erasing > 0:  # on F's inputs only: G's target and the soft labels stay clean
                images = random_erasing(images, cfg.random_erasing)
            feats, logits = self.reid_net(images)
            targets = pids.repeat(3)
            if cfg.alpha > 0:
                loss_id = losses.cross_entropy(logits, targets, label_smoothing=cfg.label_smoothing)
            if cfg.beta > 0:
                loss_tri = losses.triplet_loss(feats, targets, margin=cfg.margin, hard_mining=cfg.hard_mining)

        total = cfg.sr_weight * loss_sr + cfg.alpha * loss_id + cfg.beta * loss_tri
        if phase.name == JOINT:
            total = total + cfg.lambda_p * loss_p
        out.update({"loss": total, "sr": loss_sr.detach(), "id": loss_id.detach(), "tri": loss_tri.detach()})
        if phase.name == JOINT:
            out["p"] = loss_p.detach()
            if self.loss_cfg.lambda_p > 0:
                out["p_kl"] = self._last_kl
        return out

    def _finetune_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """The "fine-tuned, no SR" baseline: L_id and L_tri on F(x_l resized to F's input) and F(x_h); no G, no P."""
        cfg = self.loss_cfg
        x_l, x_h, pids = batch["x_l"], batch["x_h"], batch["pid"].long()
        images = torch.cat([self.lr_net_inputs(x_l, batch.get("lr_hw")), self.net_input(x_h)])
        if cfg.random_erasing > 0:
            images = random_erasing(images, cfg.random_erasing)
        feats, logits = self.reid_net(images)
        targets = pids.repeat(2)
        zero = x_h.new_zeros(())
        loss_id = losses.cross_entropy(logits, targets, label_smoothing=cfg.label_smoothing) if cfg.alpha > 0 else zero
        loss_tri = losses.triplet_loss(feats, targets, margin=cfg.margin, hard_mining=cfg.hard_mining) if cfg.beta > 0 else zero
        total = cfg.alpha * loss_id + cfg.beta * loss_tri
        return {"loss": total, "id": loss_id.detach(), "tri": loss_tri.detach()}

    def lr_net_inputs(self, x_l: torch.Tensor, lr_hw: torch.Tensor | None, scale: int | None = None) -> torch.Tensor:
        """F/P's input ``[B, 3, *input_size]`` of each LR image, super-resolved by ``scale`` first (None: not).

        ``lr_hw`` ``[B, 2]`` gives each image's own size inside the padded batch ``x_l`` (None: all
        fill it); images of one size go through G together, so G never sees the padding.
        """
        h, w = x_l.shape[-2:]
        if lr_hw is None or bool(((lr_hw[:, 0] == h) & (lr_hw[:, 1] == w)).all()):
            return self.net_input(x_l if scale is None else self.super_resolve(x_l, scale))
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (gh, gw) in enumerate(lr_hw.tolist()):
            groups.setdefault((int(gh), int(gw)), []).append(i)
        parts, order = [], []
        for (gh, gw), rows in groups.items():
            x = x_l[rows, :, :gh, :gw]
            parts.append(self.net_input(x if scale is None else self.super_resolve(x, scale)))
            order.extend(rows)
        # concatenate (differentiable) and put the rows back in batch order
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return torch.cat([p.to(parts[0].dtype) for p in parts])[inverse.to(x_l.device)]

    def _joint_lr_branch(self, x_l: torch.Tensor, x_h: torch.Tensor, lr_index: torch.Tensor, lr_hw: torch.Tensor | None = None,
                         pids: torch.Tensor | None = None):
        """F's input of x_rp = G_{r_p}(x_l) with r_p from P; the soft labels (measured if due); L_p."""
        cfg = self.loss_cfg
        # P's input is the data x_l itself: L_p's graph holds no part of G or F.
        logits = self.scale_predictor(self.lr_net_inputs(x_l.detach(), lr_hw))
        pred_idx = logits.detach().argmax(dim=1)
        use_labels = cfg.lambda_p > 0
        measured = self.soft_labels.lookup(lr_index)[1] if use_labels else None
        measure = use_labels and (self._refresh_epoch or not bool(measured.all()))

        if measure:
            # Every scale is needed for the metric, but no gradient: the labels are constants (Eq. 3).
            # Memory: G's graph at every scale of the whole batch, kept alive by the few rows x_rp
            # took from each, was most of the peak RSS of the CPU recipe (issue 12); x_rp is made
            # below with a graph of its own rows only (G has no batch statistics, so the rows of
            # G(x_l) and G(x_l[rows]) are the same numbers).
            with torch.no_grad():
                outputs = [self.lr_net_inputs(x_l, lr_hw, s) for s in self.scales]
                labels = self._soft_labels_of_net_inputs(outputs, x_h, pids)
            del outputs
            update = torch.ones_like(measured) if self._refresh_epoch else ~measured
            self.soft_labels.update(lr_index.cpu()[update], labels.cpu()[update])
            if pids is not None:  # statistics: does the label's argmax rank the true match best in this batch?
                best = best_ranking_scale(self._last_feats, self._last_anchor, pids, pids)
                ok = update.to(best.device) & (best >= 0)
                self._epoch_label_hits[0] += int((labels.argmax(dim=1).to(best.device) == best)[ok].sum())
                self._epoch_label_hits[1] += int(ok.sum())
        x_rp_net = self._lr_net_inputs_at(x_l, lr_hw, pred_idx)

        loss_p = x_l.new_zeros(())
        if use_labels:
            target = self.soft_labels.lookup(lr_index)[0].to(logits.device)
            if not cfg.soft_labels:
                target = one_hot_labels(target)
            loss_p = losses.soft_cross_entropy(logits, target)
            # KL(l || p) = L_p - H(l): what P can still learn (L_p itself never goes below H(l)).
            entropy = -(target * target.clamp_min(1e-12).log()).sum(1).mean()
            self._last_kl = (loss_p.detach() - entropy).clamp_min(0.0)
        return x_rp_net, loss_p, pred_idx

    def _lr_net_inputs_at(self, x_l: torch.Tensor, lr_hw: torch.Tensor | None, scale_idx: torch.Tensor) -> torch.Tensor:
        """F's input of ``G_{scales[k_i]}(x_l[i])`` for each row ``i``: one G pass per scale, on its rows only."""
        x_rp_net = torch.empty(len(x_l), 3, *self.input_size, device=x_l.device, dtype=x_l.dtype)
        for k in scale_idx.unique().tolist():
            rows = (scale_idx == k).nonzero().flatten()
            hw = None if lr_hw is None else lr_hw[rows.cpu()]
            x_rp_net[rows] = self.lr_net_inputs(x_l[rows], hw, self.scales[k]).to(x_rp_net.dtype)
        return x_rp_net

    @torch.no_grad()
    def measure_soft_labels(self, sr_outputs: Sequence[torch.Tensor], x_h: torch.Tensor,
                            pids: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 3 for a batch: distances of F(G_ri(x_l)) to F(x_h) in F's retrieval space (eval mode).

        ``pids`` (the batch's person ids) is needed by ``loss.label_target: margin`` only."""
        return self._soft_labels_of_net_inputs([self.net_input(o) for o in sr_outputs], x_h, pids)

    @torch.no_grad()
    def _soft_labels_of_net_inputs(self, net_inputs: Sequence[torch.Tensor], x_h: torch.Tensor,
                                   pids: torch.Tensor | None = None) -> torch.Tensor:
        with eval_mode(self.reid_net):
            anchor = self.reid_net(self.net_input(x_h)).float()
            feats = torch.stack([self.reid_net(x).float() for x in net_inputs])  # [N, B, D]
        self._last_feats, self._last_anchor = feats, anchor
        return self._soft_labels_of_features(feats, anchor, pids)

    def _soft_labels_of_features(self, feats: torch.Tensor, anchor: torch.Tensor, pids: torch.Tensor | None) -> torch.Tensor:
        """Eq. 3 from F's features ``[N, B, D]`` of the LR images at each scale and of their x_h ``[B, D]``."""
        cfg = self.loss_cfg
        if cfg.label_target == "margin":
            if pids is None:
                raise ValueError("loss.label_target: margin needs the batch's person ids")
            dists = margin_distances(feats, anchor, pids)
        else:
            dists = (feats - anchor[None]).norm(dim=2).t()  # [B, N]
        return scale_factor_metric(dists, cfg.gamma, cfg.label_norm, cfg.label_temperature)

    # ------------------------------------------------------------------------------------------ statistics
    def on_epoch_end(self, phase: Phase, epoch: int, ctx: EpochContext) -> dict[str, float] | None:
        """Per joint epoch: what the soft labels carry and what P learnt of them (docs/pri.md, "Soft labels").

        ``label_entropy`` / ``label_max_prob``: mean over the table's measured labels (uniform: ln N, 1/N);
        ``label_best``: share of the labels measured this epoch whose argmax is the scale that ranks the
        image's true match best among the batch's x_h; ``heldout_*`` (with ``triplets.holdout``): on the
        held-out training persons, P's argmax against their labels' argmax (``heldout_p_label``) and
        against their best-ranking scale (``heldout_p_best``, ``heldout_label_best`` for the label).
        """
        if phase.name != JOINT or self.loss_cfg.lambda_p <= 0:
            return None
        out: dict[str, float] = {}
        measured = self.soft_labels.measured
        if bool(measured.any()):
            stats = label_statistics(self.soft_labels.labels[measured])
            out["label_entropy"], out["label_max_prob"] = stats["entropy"], stats["max_prob"]
        hits, count = self._epoch_label_hits
        if count:
            # with its count: on an epoch that does not re-measure the table, only the images seen for
            # the first time are measured, and a share of a handful reads as 0 or 1
            out["label_best"], out["label_best_n"] = hits / count, float(count)
        out.update(self.heldout_statistics(ctx))
        return out

    @torch.no_grad()
    def heldout_statistics(self, ctx: EpochContext | None = None) -> dict[str, float]:
        """P against the soft labels of the held-out training persons (empty without any)."""
        ds = self._heldout_dataset
        if ds is None or len(ds) == 0:
            return {}
        if self._heldout_items is None:  # the same x_h draw and no flip every epoch, whatever the run's RNG
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self._heldout_items = [ds[i] for i in range(len(ds))]
        device = next(self.parameters()).device
        p_idx, feats, anchors, pids = [], [], [], []
        with eval_mode(self.sr_net), eval_mode(self.scale_predictor), eval_mode(self.reid_net):
            for start in range(0, len(self._heldout_items), 32):
                chunk = self._heldout_items[start:start + 32]
                x_l = torch.stack([c["x_l"] for c in chunk]).to(device)
                x_h = torch.stack([c["x_h"] for c in chunk]).to(device)
                lr_hw = torch.stack([c["lr_hw"] for c in chunk])
                feats.append(torch.stack([self.reid_net(self.lr_net_inputs(x_l, lr_hw, s)).float() for s in self.scales]).cpu())
                anchors.append(self.reid_net(self.net_input(x_h)).float().cpu())
                pids.append(torch.tensor([int(c["pid"]) for c in chunk]))
                p_idx.append(self.scale_predictor(self.lr_net_inputs(x_l, lr_hw)).argmax(dim=1).cpu())
        feats, anchors, p_idx, pids = torch.cat(feats, dim=1), torch.cat(anchors), torch.cat(p_idx), torch.cat(pids)
        # the labels of all held-out images at once: a margin label's other persons are all the held-out ones
        labels = self._soft_labels_of_features(feats, anchors, pids)
        best = best_ranking_scale(feats, anchors, pids, pids)
        ok = best >= 0
        label_idx = labels.argmax(dim=1)

        def share(hits: torch.Tensor) -> float:
            return float(hits[ok].float().mean()) if ok.any() else float("nan")

        return {
            "heldout_p_label": float((p_idx == label_idx).float().mean()),
            "heldout_p_best": share(p_idx == best),
            "heldout_label_best": share(label_idx == best),
            # the held-out analogue of "P beats the best fixed scale": the constant scale that is the
            # best-ranking one most often on these images (chosen in hindsight)
            "heldout_best_constant": max(share(best == k) for k in range(len(self.scales))),
        }

    # ------------------------------------------------------------------------------------------ state
    def extra_state(self) -> dict[str, torch.Tensor]:
        return self.soft_labels.state()

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.soft_labels.load_state(state)

    # ------------------------------------------------------------------------------------------ evaluation
    def evaluate(self, splits, ctx: EpochContext) -> EvalReport:
        """PRI.md Table 2 on ``splits``: fixed x1..xN, size-based, ideal and adaptive predictors."""
        from lrreid.methods.pri.evaluate import evaluate_predictors

        result = evaluate_predictors(self, splits, ctx)
        self.last_evaluation = result
        return result.report()

