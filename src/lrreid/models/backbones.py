"""CNN backbones for the re-ID encoders and PRI's scale predictor: any timm model, headless.

``create_backbone(name)`` returns the timm model built with ``num_classes=0, global_pool=''``,
so ``backbone(x)`` is the last feature map ``[B, C, h, w]``, together with ``C``.  Pretrained
weights come from a local file (any layout an importer knows, see :mod:`lrreid.models.weights`)
or from timm's own hub download.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from lrreid.errors import CheckpointError, ConfigError
from lrreid.models.weights import (
    IMPORTERS,
    guess_importer,
    load_weights,
    read_state_dict,
    resolve_weights,
)
from lrreid.utils.logging import get_logger

log = get_logger("backbones")

HUB_WORDS = ("timm", "hub")


def _create(name: str, **kwargs) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, pretrained=False, num_classes=0, global_pool="", **kwargs)
    except RuntimeError as exc:
        if "Unknown model" not in str(exc):
            raise
        close = timm.list_models(f"*{name.split('.')[0]}*")[:6]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise ConfigError(f"unknown backbone {name!r}: not a timm model name{hint}") from None


def _feature_channels(name: str) -> int:
    """Channels of the backbone's output, from a forward pass on the meta device (no compute).

    ``num_features`` is not always the output width (timm's MobileNetV3 adds a head conv), and
    models that return tokens instead of a feature map (ViTs) must be refused here.
    """
    with torch.device("meta"):
        probe = _create(name)
        out = None
        for size in ((64, 32), (224, 224)):
            try:
                out = probe(torch.empty(1, 3, *size))
                break
            except Exception:  # noqa: BLE001 - fixed-size models reject the small probe
                continue
    if out is None or out.dim() != 4:
        shape = "an error" if out is None else f"shape {list(out.shape)}"
        raise ConfigError(f"backbone {name!r} does not return a [B, C, h, w] feature map (got {shape}); use a CNN")
    return int(out.shape[1])


class EncoderBackbone(nn.Module):
    """A re-ID encoder used as a backbone: its last feature map, without its own embedding head."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_features(x)


def create_encoder(name: str, pretrained: str | os.PathLike | None = None) -> nn.Module:
    """A whole re-ID encoder (``lrreid.models.reid``) by name, with weights from ``pretrained`` (a file)."""
    from lrreid.models.reid.load import load_encoder

    if pretrained is not None and os.fspath(pretrained) in HUB_WORDS:
        raise CheckpointError(f"re-ID encoder {name!r} has no hub weights: name a local file "
                              "(an OpenVINO IR .xml or a torchreid .pth)")
    return load_encoder(name) if pretrained is None else load_encoder(name, pretrained)


def architecture_weights(name: str, pretrained: str | os.PathLike | None) -> str | os.PathLike | None:
    """The weight file a network rebuilt for a checkpoint's weights still needs, or None.

    A timm backbone's architecture is its name: the checkpoint brings every weight, so none is
    read.  A re-ID encoder's file decides its architecture (an OMZ IR's channels, a torchreid
    classifier's classes) and its input convention, so it is read again; a missing one is a
    one-line :class:`CheckpointError`.
    """
    from lrreid.models.reid.encoder import is_encoder_name

    if pretrained is None or not is_encoder_name(name):
        return None
    from lrreid.models.weights import resolve_weights

    try:
        resolve_weights(pretrained)
    except CheckpointError as exc:
        raise CheckpointError(f"re-ID encoder {name!r}: its weight file decides its architecture and is needed to "
                              f"rebuild the trained network ({exc})") from None
    return pretrained


def create_backbone(name: str, pretrained: str | os.PathLike | None = None, *, strict: bool = True) -> tuple[nn.Module, int]:
    """A headless timm CNN (or re-ID encoder's feature extractor) and its output channels.

    ``pretrained``:

    - ``None``: random initialisation;
    - ``"timm"`` or ``"hub"``: timm's default pretrained weights for ``name`` (downloaded, or taken
      from the local cache; offline this is a :class:`CheckpointError` asking for a file);
    - a hub name (``"timm:resnet50.a1_in1k"``) or a local file path: read, renamed by the importer
      that matches the file's layout (torchvision/timm ResNets, the original MobileNetV2 port,
      ...), and loaded.  A classifier in the file (``fc.*``, ``classifier.*``) is dropped, since the
      backbone has none; anything else that does not fit is an error unless ``strict=False``.

    Example::

        net, channels = create_backbone("resnet18")
        net(torch.rand(2, 3, 256, 128)).shape     # torch.Size([2, 512, 8, 4]); channels == 512
        net, c = create_backbone("mobilenetv2_100", "../shared/weights/mobilenetv2_imagenet_features.pt")
    """
    from lrreid.models.reid.encoder import is_encoder_name

    if is_encoder_name(name):  # OSNet & co: their feature maps, weights from their own files
        encoder = create_encoder(name, pretrained)
        return EncoderBackbone(encoder), int(encoder.feature_channels)
    channels = _feature_channels(name)
    model = _create(name)
    if pretrained is None:
        return model, channels
    spec = os.fspath(pretrained)
    if spec in HUB_WORDS:
        spec_word = spec
        tag = model.pretrained_cfg.get("tag")
        spec = f"timm:{name if '.' in name or not tag else f'{name}.{tag}'}"
        try:
            path = resolve_weights(spec)
        except CheckpointError as exc:
            raise CheckpointError(f"create_backbone({name!r}, pretrained={spec_word!r}): {exc}") from None
    else:
        path = resolve_weights(spec)
    state = read_state_dict(path)
    importer = guess_importer(state)
    try:
        state = IMPORTERS.get(importer)(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    classifier = model.pretrained_cfg.get("classifier") or ()
    heads = tuple(f"{c}." for c in ((classifier,) if isinstance(classifier, str) else classifier) if c)
    dropped = {k for k in state if k.startswith(heads)} if heads else set()
    if dropped:
        log.info("%s: dropping the classifier (%d tensors: %s)", path, len(dropped), ", ".join(sorted(dropped)))
        state = {k: v for k, v in state.items() if k not in dropped}
    report = load_weights(model, state, strict=strict, label=f"{path} ({importer} layout)")
    log.info("%s -> %s: %s", path, name, report.summary())
    return model, channels
