"""A re-ID encoder from a weight file or a name: the architecture read off the file, weights loaded strictly.

One entry point for every published re-ID network lrreid knows::

    net = load_encoder("../shared/weights/omz/person-reidentification-retail-0277/FP16/person-reidentification-retail-0277.xml")
    net = load_encoder("../shared/weights/torchreid/osnet_x0_25_market1501.pth")   # osnet_x0_25, 751 classes
    net = load_encoder("osnet_ain_x1_0")                                           # random weights
    net = load_encoder("osnet_x1_0", "my_osnet.pth")                               # a named architecture

The file decides the architecture (an OpenVINO IR describes its own graph; a torchreid state dict
is recognised by its keys and its width by ``conv1.conv.weight``); naming one as well makes a file
of another architecture an error that names the first mismatching key and shape.  The returned
module carries ``input_spec`` (size, mean/std, distance) and ``weights_source`` (the file).
"""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from lrreid.errors import CheckpointError, ConfigError
from lrreid.models.reid.encoder import build_encoder, encoder_names, is_encoder_name
from lrreid.models.reid.osnet import WIDTHS

IR_SUFFIXES = (".xml",)


def is_openvino_ir(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IR_SUFFIXES


def torchreid_architecture(state: dict) -> str | None:
    """The torchreid OSNet name a state dict was saved from (``osnet_x0_25``, ``osnet_ain_x1_0``, ...), or None."""
    conv1 = state.get("conv1.conv.weight")
    if conv1 is None or conv1.dim() != 4:
        return None
    width = next((w for w, c in WIDTHS.items() if c[0] == conv1.shape[0]), None)
    if width is None:
        return None
    if "conv2.0.conv2.0.layers.0.conv1.weight" in state:
        return f"osnet_ain_{width}"
    if "conv2.0.conv2a.conv1.weight" in state:
        if "conv2.0.IN.weight" in state and width == "x1_0":
            return "osnet_ibn_x1_0"
        return f"osnet_{width}"
    return None


def load_encoder(name_or_path: str | os.PathLike, weights: str | os.PathLike | None = None) -> nn.Module:
    """A re-ID encoder (see the module doc); :class:`CheckpointError`/:class:`ConfigError` in one line otherwise."""
    from lrreid.models.weights import load_weights, read_state_dict, resolve_weights

    text = os.fspath(name_or_path)
    name: str | None = None
    if weights is None and is_encoder_name(text):
        return build_encoder(text)
    if weights is None:
        path = Path(text)
        if not path.exists():
            raise CheckpointError(f"{path}: no such weight file, and not a re-ID encoder name "
                                  f"(known: {', '.join(encoder_names())})")
    else:
        name = None if text in ("", "auto") else text
        if name is not None and not is_encoder_name(name):
            raise ConfigError(f"unknown re-ID encoder {name!r} (known: {', '.join(encoder_names())})")
        path = resolve_weights(weights)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a re-ID weight file (.xml OpenVINO IR or .pth)")
    if is_openvino_ir(path) or path.suffix.lower() == ".bin" and path.with_suffix(".xml").is_file():
        from lrreid.models.openvino_ir import read_openvino_ir

        ir = read_openvino_ir(path)
        if name is not None:
            expected = build_encoder(name)
            if not name.startswith("osnet_omz") or tuple(expected.channels) != ir.kwargs["channels"]:
                raise CheckpointError(
                    f"{path}: an OMZ OSNet of channels {list(ir.kwargs['channels'])}, not a {name}")
        net = ir.build()
        net.weights_source = str(path)
        return net
    state = read_state_dict(path)
    arch = torchreid_architecture(state)
    if name is None:
        if arch is None:
            sample = ", ".join(list(state)[:3])
            raise CheckpointError(
                f"{path}: not a re-ID network lrreid knows (expected a torchreid OSNet state dict with "
                f"conv1.conv.weight, or an OpenVINO IR .xml; it has {sample}, ...)")
        name = arch
    classifier = state.get("classifier.weight")
    kwargs = {"num_classes": int(classifier.shape[0])} if classifier is not None and not name.startswith("osnet_omz") else {}
    net = build_encoder(name, **kwargs)
    load_weights(net, state, strict=True, label=f"{path} (as {name})")
    net.weights_source = str(path)
    return net

