"""PRI: Prediction, Recovery and Identification (Han et al., ECCV 2020) -- adaptive SR scale prediction.

``method: pri`` in a run config.  The sections and their defaults are in
:mod:`lrreid.methods.pri.config`; docs/pri.md describes the method as built.

Example::

    cfg = load_config("configs/pri_caviar_cpu.yaml")
    splits = build_splits(cfg)
    method = build_method(cfg, splits)          # a PRIMethod
    build_trainer(cfg, method, splits).train()
"""
from __future__ import annotations

from lrreid.errors import CheckpointError, ConfigError
from lrreid.methods.base import METHODS
from lrreid.methods.pri.config import PRIConfig
from lrreid.methods.pri.model import PRIMethod

__all__ = ["PRIConfig", "PRIMethod", "PRISpec", "build_pri", "build_trained_pri"]


def build_pri(cfg, train_records, num_classes: int) -> PRIMethod:
    """Build the three networks and the training triplets from a run config (see PRISpec).

    ``num_classes`` is the number of identities in ``train_records``; F's classifier gets one class
    per identity that forms triplets (both LR and HR images), which can be fewer.
    """
    from lrreid.methods.pri.data import (
        TripletDataset,
        hold_out_persons,
        mean_area,
        median_size,
        split_by_resolution,
        triplet_identities,
    )

    trip = cfg.triplets
    res, heldout = hold_out_persons(split_by_resolution(train_records, trip.lr_cameras, trip.size_sample),
                                    trip.holdout, seed=int(getattr(cfg, "seed", 0)))
    res = triplet_identities(res)
    classes = len(res.hr_by_pid)  # of the num_classes training identities, those with triplets
    native = trip.lr_size == "native"
    lr_size = None if native else tuple(trip.lr_size) if trip.lr_size else median_size(res.lr, trip.size_sample)
    hr_records = res.hr
    hr_size = tuple(trip.hr_size) if trip.hr_size else median_size(hr_records, trip.size_sample)
    hr_area = mean_area(hr_records, trip.size_sample)
    dataset = TripletDataset(res.lr, res.hr_by_pid, lr_size=lr_size, hr_size=hr_size, flip=trip.flip)
    heldout_dataset = None
    if heldout is not None:
        heldout_dataset = TripletDataset(heldout.lr, heldout.hr_by_pid, lr_size=lr_size, hr_size=hr_size, flip=False,
                                         lr_canvas=dataset.lr_canvas if native else None)
    lr_shown = dataset.lr_canvas

    method = _build(cfg, classes=classes, pretrained=True, train_dataset=dataset, num_lr_images=len(dataset),
                    hr_mean_area=hr_area, train_paths=[r.path for r in train_records], heldout_dataset=heldout_dataset)
    method.training_summary = {
        "lr_images": len(res.lr), "hr_images": len(hr_records), "identities": len(res.hr_by_pid),
        "lr_size": "native" if native else list(lr_size), "hr_size": list(hr_size), "lr_cameras": res.lr_cameras, "skipped": res.skipped,
        "heldout_identities": len(heldout.hr_by_pid) if heldout else 0,
    }
    # logged when training asks for the data, not when `index`/`search`/`evaluate` rebuild the method
    method.training_note = (
        f"PRI training triplets: {len(res.lr)} LR images x_l ({'own sizes, padded into' if native else 'canvas'} "
        f"{lr_shown[0]}x{lr_shown[1]}), {len(hr_records)} HR images x_h (canvas {hr_size[0]}x{hr_size[1]}), "
        f"{classes} identities (classifier classes, of {num_classes} training identities)"
        + (f"; {len(heldout.hr_by_pid)} persons held out ({len(heldout.lr)} LR images) to measure P" if heldout else "")
        + "".join(f"; skipped {c} {k}" for k, c in res.skipped.items())
    )
    return method


def build_trained_pri(cfg, checkpoint) -> PRIMethod:
    """The networks of a trained PRI from its config and checkpoint: no training images, no pretrained files.

    The numbers :func:`build_pri` read off the training images come from the checkpoint's
    ``derived`` section (a checkpoint written before it existed: from its tensor shapes).
    """
    derived = dict(checkpoint.meta.get("derived") or {})
    if "classes" not in derived:  # an older checkpoint: the same numbers from its shapes and buffers
        shapes = checkpoint.meta["signature"].get("shapes", {})
        if "reid_net.classifier.weight" not in shapes or "soft_labels.labels" not in checkpoint.extra_state:
            raise CheckpointError(f"{checkpoint.path}.json: a PRI checkpoint without the numbers lrreid needs to rebuild "
                                  "it (classes, LR images); retrain, or resave it with an lrreid that still builds it")
        derived = {"classes": shapes["reid_net.classifier.weight"][0],
                   "lr_images": len(checkpoint.extra_state["soft_labels.labels"]),
                   "hr_mean_area": float(checkpoint.model_state["hr_mean_area"])}
    method = _build(cfg, classes=int(derived["classes"]), pretrained=False, train_dataset=None,
                    num_lr_images=int(derived["lr_images"]), hr_mean_area=float(derived["hr_mean_area"]))
    method.training_summary = {k: derived[k] for k in ("lr_size", "hr_size") if k in derived}
    return method


def _build(cfg, *, classes: int, pretrained: bool, **data) -> PRIMethod:
    """PRIMethod with G, F, P from ``cfg.model``; ``pretrained=False``: random weights where the
    checkpoint brings them (a re-ID encoder's file still decides its architecture, so it is read)."""
    from lrreid.models.backbones import architecture_weights
    from lrreid.models.predictor import ScalePredictor
    from lrreid.models.reid import ReIDNet
    from lrreid.models.sr import build_sr_model

    m = cfg.model
    predictor_backbone = m.predictor_backbone or m.backbone
    predictor_pretrained = m.pretrained if m.predictor_pretrained == "same" else m.predictor_pretrained
    reid_pretrained, sr_weights = m.pretrained, m.sr_weights
    if not pretrained:
        reid_pretrained = architecture_weights(m.backbone, reid_pretrained)
        predictor_pretrained = architecture_weights(predictor_backbone, predictor_pretrained)
        sr_weights = None
    try:
        reid_net = ReIDNet(m.backbone, num_classes=classes, feat_dim=m.feat_dim, pretrained=reid_pretrained,
                           head=m.reid_head, neck=m.reid_neck)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
    fixed = getattr(reid_net.backbone, "input_size", None) if reid_net.encoder_head else None
    if fixed is not None and tuple(fixed) != tuple(cfg.data.input_size):
        raise ConfigError(f"model.backbone {m.backbone!r} takes {fixed[0]}x{fixed[1]} images (its pooling is fixed); "
                          f"set data.input_size: [{fixed[0]}, {fixed[1]}] (got {list(cfg.data.input_size)})")
    predictor = ScalePredictor(predictor_backbone, num_scales=len(m.scales), feat_dim=m.predictor_feat_dim,
                               pretrained=predictor_pretrained)
    try:
        sr_net = build_sr_model(m.sr, weights=sr_weights, **m.sr_args)
    except TypeError as exc:
        raise ConfigError(f"model.sr_args {m.sr_args} do not fit SR model {m.sr!r} ({exc})") from None
    description = {"sr": m.sr, "backbone": m.backbone, "predictor_backbone": predictor_backbone}
    return PRIMethod(
        sr_net=sr_net, reid_net=reid_net, scale_predictor=predictor, scales=m.scales,
        input_size=cfg.data.input_size, loss=cfg.loss, schedule=cfg.schedule, inference=cfg.inference,
        description=description, **data,
    )


class PRISpec:
    """How ``method: pri`` is validated and built (lrreid.methods.base.MethodSpec)."""

    config_class = PRIConfig

    @staticmethod
    def build(cfg, train_records, num_classes: int) -> PRIMethod:
        return build_pri(cfg, train_records, num_classes)

    @staticmethod
    def build_trained(cfg, checkpoint) -> PRIMethod:
        return build_trained_pri(cfg, checkpoint)

    @staticmethod
    def companion_runs(cfg) -> dict[str, dict]:
        """With ``schedule.baseline_finetune``, ``--each-split`` also trains "fine-tuned, no SR" per split."""
        if cfg.schedule.baseline_finetune and cfg.schedule.mode == "pri":
            return {"finetune": {"schedule": {"mode": "finetune", "baseline_finetune": False}}}
        return {}


METHODS.register("pri")(PRISpec)
