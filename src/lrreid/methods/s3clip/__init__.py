"""S3-CLIP (Endredi and Cserey, arXiv 2601.08807): SwinIR-S in front of a CLIP video re-ID encoder.

``method: s3clip`` in a run config; see docs/s3clip.md and :mod:`lrreid.methods.s3clip.model`.
Only the config dataclasses are imported here, so loading any config stays cheap; the spec's
``build`` imports the models (open_clip, SR networks) when a run needs them.
"""
from __future__ import annotations

from lrreid.methods.base import METHODS
from lrreid.methods.s3clip.config import S3ClipConfig
from lrreid.utils.logging import get_logger

log = get_logger("methods.s3clip")


class S3ClipSpec:
    """Builds :class:`~lrreid.methods.s3clip.model.S3ClipMethod` from a run config."""

    config_class = S3ClipConfig

    @staticmethod
    def build(cfg, train_records, num_classes: int):
        from lrreid.errors import ConfigError
        from lrreid.methods.s3clip.data import identities_with_anchors, pseudo_tracklets

        sampling = cfg.sampling
        records = list(train_records)
        if sampling.pseudo_tracklets:
            records = pseudo_tracklets(records, sampling.view_map)
        # num_classes counts every training identity; the classifier only those that give training items.
        records, without = identities_with_anchors(records, sampling.lr_views)
        if not records:
            raise ConfigError(f"S3-CLIP: no training identity has a high-resolution tracklet (a view other than "
                              f"{list(sampling.lr_views)}) to make HR/LR triplets from")
        if without:
            log.warning("S3-CLIP: %d of %d training identities have no HR tracklet (views other than %s): "
                        "no training item, no class", without, num_classes, list(sampling.lr_views))
        num_classes = len({r.pid for r in records})
        return _build(cfg, records, num_classes, pretrained=True)

    @staticmethod
    def build_trained(cfg, checkpoint):
        """The networks of a trained run from its config and checkpoint: no tracklets, no pretrained files."""
        from lrreid.errors import CheckpointError

        derived = checkpoint.meta.get("derived") or {}
        classes = derived.get("classes")
        if classes is None:  # an older checkpoint: the classifier's rows are the classes
            shape = checkpoint.meta["signature"].get("shapes", {}).get("reid_head.classifier.weight")
            if shape is None:
                raise CheckpointError(f"{checkpoint.path}.json: an S3-CLIP checkpoint without its number of classes; "
                                      "retrain, or resave it with an lrreid that still builds it")
            classes = shape[0]
        return _build(cfg, [], int(classes), pretrained=False)


def _build(cfg, records, num_classes: int, *, pretrained: bool):
    """S3ClipMethod from ``cfg``; ``pretrained=False``: random weights where the checkpoint brings them."""
    from lrreid.methods.s3clip.model import S3ClipMethod
    from lrreid.models.reid.clip_reid import build_clip_reid_encoders
    from lrreid.models.sr import build_sr_model

    m, sr_cfg, method_config = cfg.model, cfg.sr, cfg.method_config
    if not pretrained and sr_cfg.predictor_pretrained is not None:
        from dataclasses import replace

        from lrreid.models.backbones import architecture_weights

        kept = architecture_weights(sr_cfg.predictor_backbone, sr_cfg.predictor_pretrained)
        method_config = replace(method_config, sr=replace(method_config.sr, predictor_pretrained=kept))
    sr = build_sr_model(sr_cfg.model, weights=sr_cfg.pretrained if pretrained else None, **sr_cfg.args)
    if m.encoder == "clip":
        image_encoder, text_encoder = build_clip_reid_encoders(
            m.clip, image_size=tuple(cfg.data.input_size), pretrained=m.pretrained if pretrained else None,
            adapter_dim=m.adapter_dim, adapter_layers=m.adapter_layers, temporal_adapter=m.temporal_adapter,
            temporal_kernel=m.temporal_kernel, pooling=m.pooling,
        )
        encoder_name = m.clip if isinstance(m.clip, str) else "custom"
    else:
        image_encoder, text_encoder = _reid_video_encoder(cfg, pretrained), None
        encoder_name = m.encoder
    return S3ClipMethod(sr=sr, image_encoder=image_encoder, text_encoder=text_encoder, train_records=records,
                        num_classes=num_classes, config=method_config, input_size=tuple(cfg.data.input_size),
                        seed=cfg.seed, sr_name=sr_cfg.model, clip_name=encoder_name)


def _reid_video_encoder(cfg, pretrained: bool = True):
    """I as a re-ID encoder (model.encoder) with its file's weights: checked against what needs CLIP."""
    from lrreid.errors import ConfigError
    from lrreid.models.backbones import create_encoder
    from lrreid.models.reid.encoder import is_encoder_name
    from lrreid.models.reid.video import FrameEncoderVideo

    m, mc = cfg.model, cfg.method_config
    if not is_encoder_name(m.encoder):
        from lrreid.models.reid.encoder import REID_ENCODERS

        raise ConfigError(f"model.encoder={m.encoder!r}: expected clip or a re-ID encoder ({', '.join(REID_ENCODERS.names())})")
    needs_text = [name for name, on in (("loss.v2sce", mc.loss.v2sce), ("loss.i2t", mc.loss.i2t),
                                        ("phases.prompt.epochs", mc.phases.prompt.epochs)) if on]
    if needs_text:
        raise ConfigError(f"{needs_text[0]} needs CLIP's text tower, which model.encoder={m.encoder} has not; "
                          f"set {', '.join(needs_text)} to 0")
    from lrreid.models.backbones import architecture_weights

    encoder = create_encoder(m.encoder, m.pretrained if pretrained else architecture_weights(m.encoder, m.pretrained))
    fixed = getattr(encoder, "input_size", None)  # a network whose pooling fixes the frame size (OMZ OSNet)
    if fixed is not None and tuple(cfg.data.input_size) != tuple(fixed):
        raise ConfigError(f"model.encoder {m.encoder} takes {fixed[0]}x{fixed[1]} frames; set data.input_size: "
                          f"[{fixed[0]}, {fixed[1]}] (got {list(cfg.data.input_size)})")
    return FrameEncoderVideo(encoder, pooling=m.pooling, image_size=tuple(cfg.data.input_size))


METHODS.register("s3clip")(S3ClipSpec)

__all__ = ["S3ClipSpec", "S3ClipConfig"]
