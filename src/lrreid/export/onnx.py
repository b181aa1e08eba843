"""ONNX export of an :class:`~lrreid.inference.pipeline.LRReIDPipeline`.

Separate graphs (default), each with a dynamic batch size and RGB inputs in [0, 1], NCHW float32;
resizing and normalisation of probes are inside the graphs, so a runtime needs no lrreid code::

    predictor.onnx       lr_image [B,3,h,w] -> logits [B, N]             scale = scales[argmax]
    sr_x{s}.onnx         lr_image [B,3,h,w] -> sr_image [B,3,s*h,s*w]    one graph per scale s
    reid.onnx            image [B,3,h,w]    -> features [B, D]           bilinear resize to the input size inside

    probe:   features = reid(sr_x{s}(lr_image)) with s = scales[argmax(predictor(lr_image))]
    gallery: features = reid(hr_image resized to the input size by PIL's bicubic on the uint8 image)

The gallery resize stays outside the graphs: lrreid's evaluation and search resize gallery images
with PIL's antialiased bicubic on uint8 (``inference.pipeline.resize_gallery``), which ONNX's
Resize (another cubic kernel, no uint8 rounding) does not reproduce exactly, and a resize graph
that only approximated it changed Rank-1 on a 12-person gallery.  The spec's ``gallery_preprocess``
says how, in one line of PIL.

With ``fixed_scale=s`` one fused graph ``lr_to_features_x{s}.onnx`` (lr_image -> features) replaces
the predictor and SR graphs.  ``lrreid_onnx.json`` beside them lists the graphs, their inputs and
outputs, which dimensions are dynamic, the scales and the model identity.

Why one SR graph per scale: the scale is a Python number inside SR networks (Meta-SR derives its
per-pixel filter weights and the output size from it), so a graph is traced for one scale; exporting
each scale of the set is simpler and faster at run time than a scale-generic graph.

The exporter is ``torch.onnx.export(dynamo=True)`` at opset 18 (the first with an antialiased
Resize, as the pipeline's resizing); when a dynamic height/width cannot be exported the graph gets
a fixed LR size (the pipeline's ``lr_size`` or ``example_lr_size``), and as a last resort the legacy
TorchScript exporter is tried.  Every graph is checked in onnxruntime against PyTorch before it
is kept (``max_abs_diff`` in the JSON).
"""
from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrreid.errors import LrreidError
from lrreid.inference.pipeline import LRReIDPipeline
from lrreid.models.net_input import NetInput, resize_for_net
from lrreid.utils.atomic import atomic_path, atomic_write_json
from lrreid.utils.logging import get_logger

log = get_logger("export.onnx")

SPEC_FILE = "lrreid_onnx.json"


# --------------------------------------------------------------------------------------------
# The graphs: plain modules around the pipeline's networks, [0, 1] images in.  They resize and
# normalise with lrreid.models.net_input, the calls PRI's evaluation and the pipeline make.
# --------------------------------------------------------------------------------------------
class ReIDGraph(nn.Module):
    """image [B,3,h,w] in [0,1] -> bilinear resize to the input size -> normalise -> re-ID features."""

    def __init__(self, reid_net: nn.Module, input_size, mean, std, normalize_features: bool):
        super().__init__()
        self.reid_net, self.input_size = reid_net, tuple(input_size)
        self.net_input = NetInput(input_size, mean, std)
        self.normalize_features = normalize_features

    def forward(self, image):
        f = self.reid_net(self.net_input(image))
        return F.normalize(f, dim=1) if self.normalize_features else f


class PredictorGraph(nn.Module):
    """LR image [B,3,h,w] in [0,1] -> (resize to lr_size) -> resize to its input size -> scale logits."""

    def __init__(self, predictor: nn.Module, input_size, mean, std, lr_size=None):
        super().__init__()
        self.predictor, self.input_size, self.lr_size = predictor, tuple(input_size), lr_size
        self.net_input = NetInput(input_size, mean, std)

    def forward(self, lr_image):
        if self.lr_size is not None:
            lr_image = resize_for_net(lr_image, self.lr_size)
        return self.predictor(self.net_input(lr_image))


class SRGraph(nn.Module):
    """LR image [B,3,h,w] in [0,1] -> (resize to lr_size) -> SR at one fixed scale, clamped to [0,1]."""

    def __init__(self, sr_net: nn.Module | None, scale: int, lr_size=None):
        super().__init__()
        self.sr_net, self.scale, self.lr_size = sr_net, int(scale), lr_size

    def forward(self, lr_image):
        if self.lr_size is not None:
            lr_image = resize_for_net(lr_image, self.lr_size)
        if self.sr_net is None:
            return lr_image
        return self.sr_net(lr_image, self.scale).clamp(0, 1)


class FusedGraph(nn.Module):
    """LR image -> SR at a fixed scale -> re-ID features, in one graph."""

    def __init__(self, sr: SRGraph, reid: ReIDGraph):
        super().__init__()
        self.sr, self.reid = sr, reid

    def forward(self, lr_image):
        return self.reid(self.sr(lr_image))


# --------------------------------------------------------------------------------------------
# Export with fallbacks, checked in onnxruntime
# --------------------------------------------------------------------------------------------
def _ort_run(path: Path, name: str, x: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {name: x.numpy()})[0]


def _try_export(module, example, path: Path, in_name, out_name, dims: tuple[int, ...], dynamo: bool, opset: int):
    """One export attempt; raises on failure. ``dims`` are the input dims to make dynamic."""
    names = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            shapes = ({d: torch.export.Dim(names[d], min=1, max=4096) for d in dims},)
            program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=shapes,
                                        input_names=[in_name], output_names=[out_name], opset_version=opset,
                                        external_data=False, verbose=False)
            program.save(str(path), external_data=False)
        else:
            axes = {in_name: {d: names[d] for d in dims}, out_name: {0: "batch"}}
            torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=[in_name],
                              output_names=[out_name], dynamic_axes=axes, opset_version=min(opset, 17))


def export_graph(module: nn.Module, example: torch.Tensor, path: Path, in_name: str, out_name: str,
                 opset: int = 18, tol: float = 1e-3) -> dict:
    """Export ``module`` to ``path`` with a dynamic batch (and height/width when possible).

    Each attempt is run in onnxruntime on a second input of another batch size (and spatial size
    when those are dynamic) and compared with PyTorch; the first that matches is kept.
    """
    module = module.eval()
    attempts = [((0, 2, 3), True), ((0,), True), ((0, 2, 3), False), ((0,), False)]
    errors = []
    b, _, h, w = example.shape
    start = time.perf_counter()
    for dims, dynamo in attempts:
        probe = torch.rand(b + 1, 3, h + 2 if 2 in dims else h, w + 1 if 3 in dims else w, generator=torch.Generator().manual_seed(0))
        try:
            with atomic_path(path) as tmp:
                _try_export(module, example, tmp, in_name, out_name, dims, dynamo, opset)
                with torch.no_grad():
                    diffs = [float(np.abs(_ort_run(tmp, in_name, x) - module(x).numpy()).max()) for x in (example, probe)]
                    scale = max(1.0, float(module(example).abs().max()))
                if max(diffs) > tol * scale or not np.isfinite(max(diffs)):
                    raise LrreidError(f"onnxruntime differs from PyTorch by {max(diffs):.2e}")
        except Exception as exc:  # any exporter failure: try the next way
            log.debug("%s: export attempt %s failed: %s", path.name, (dims, dynamo), exc)
            errors.append(f"{'dynamo' if dynamo else 'legacy'} dims {dims}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            continue
        names = {0: "batch", 2: "height", 3: "width"}
        shape = [names[0], 3, names[2] if 2 in dims else h, names[3] if 3 in dims else w]
        log.info("exported %s in %.1f s (%s exporter, dynamic %s; onnxruntime within %.1e of PyTorch)", path.name,
                 time.perf_counter() - start, "dynamo" if dynamo else "legacy",
                 "/".join(names[d] for d in dims), max(diffs))
        return {"file": path.name, "exporter": "dynamo" if dynamo else "legacy", "input": {"name": in_name, "shape": shape},
                "max_abs_diff": max(diffs)}
    raise LrreidError(f"{path.name}: ONNX export failed ({'; '.join(errors)})")


def export_onnx(
    pipeline: LRReIDPipeline,
    out_dir: str | os.PathLike,
    fixed_scale: int | None = None,
    opset: int = 18,
    example_lr_size: tuple[int, int] | None = None,
) -> dict:
    """Write the pipeline's networks as ONNX graphs plus ``lrreid_onnx.json``; returns that spec.

    Example::

        >>> spec = export_onnx(load_pipeline("runs/demo", fast=False), "exported/")
        >>> sorted(spec["graphs"])
        ['predictor', 'reid', 'sr_x1', 'sr_x2', 'sr_x3', 'sr_x4']
    """
    from lrreid import __version__
    from lrreid.inference.identity import model_identity

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = pipeline.settings
    for module in pipeline.modules().values():  # export what onnxruntime will run: fp32 on the CPU
        module.float().to("cpu", memory_format=torch.contiguous_format)
    lr_h, lr_w = st.lr_size or example_lr_size or (max(4, st.input_size[0] // 4), max(2, st.input_size[1] // 4))
    lr_example = torch.rand(2, 3, lr_h, lr_w, generator=torch.Generator().manual_seed(1))
    reid = ReIDGraph(pipeline.reid_net, st.input_size, st.mean, st.std, st.normalize_features)
    hr_example = torch.rand(2, 3, st.input_size[0] + 8, st.input_size[1] + 4, generator=torch.Generator().manual_seed(2))
    graphs: dict[str, dict] = {}

    if fixed_scale is not None:
        pipeline._check_scale_supported(pipeline.sr_net, fixed_scale)
        name = f"lr_to_features_x{int(fixed_scale)}"
        fused = FusedGraph(SRGraph(pipeline.sr_net, fixed_scale, st.lr_size), reid)
        graphs[name] = export_graph(fused, lr_example, out / f"{name}.onnx", "lr_image", "features", opset)
        graphs[name]["output"] = {"name": "features", "shape": ["batch", pipeline.feature_dim()]}
    else:
        if pipeline.predictor is not None:
            pred = PredictorGraph(pipeline.predictor, st.predictor_input_size, st.mean, st.std, st.lr_size)
            graphs["predictor"] = export_graph(pred, lr_example, out / "predictor.onnx", "lr_image", "logits", opset)
            graphs["predictor"]["output"] = {"name": "logits", "shape": ["batch", len(st.scales)]}
        sr_scales = st.scales if pipeline.sr_net is not None else (1,)
        for s in sr_scales:
            name = f"sr_x{s}"
            graphs[name] = export_graph(SRGraph(pipeline.sr_net, s, st.lr_size), lr_example, out / f"{name}.onnx",
                                        "lr_image", "sr_image", opset)
            graphs[name]["output"] = {"name": "sr_image", "shape": ["batch", 3, f"{s}*height", f"{s}*width"]}
    graphs["reid"] = export_graph(reid, hr_example, out / "reid.onnx", "image", "features", opset)
    graphs["reid"]["output"] = {"name": "features", "shape": ["batch", pipeline.feature_dim()]}
    for g in graphs.values():
        _readable(out / g["file"])

    spec = {
        "lrreid_version": __version__,
        "model_identity": model_identity(pipeline),
        "source": pipeline.source.get("path"),
        "opset": opset,
        "scales": list(st.scales),
        "fixed_scale": fixed_scale if fixed_scale is not None else st.fixed_scale,
        "input_size": list(st.input_size),
        "predictor_input_size": list(st.predictor_input_size),
        "lr_size": list(st.lr_size) if st.lr_size else None,
        "mean": list(st.mean),
        "std": list(st.std),
        "feature_dim": pipeline.feature_dim(),
        "normalize_features": st.normalize_features,
        "image_format": "float32 NCHW RGB in [0, 1]; probe resizing and normalisation happen inside the graphs",
        "gallery_preprocess": (
            f"PIL: Image.open(path).convert('RGB').resize(({st.input_size[1]}, {st.input_size[0]}), Image.BICUBIC), "
            "then float32 / 255, NCHW (what lrreid evaluate and lrreid search do)"),
        "usage": (
            f"probe: features = lr_to_features_x{fixed_scale}(lr_image); "
            "gallery: features = reid(gallery_preprocess(hr_image)); rank by Euclidean distance" if fixed_scale is not None else
            "probe: scale = scales[argmax(predictor(lr_image))]; features = reid(sr_x{scale}(lr_image)); "
            "gallery: features = reid(gallery_preprocess(hr_image)); rank by Euclidean distance"
        ),
        "graphs": graphs,
    }
    atomic_write_json(out / SPEC_FILE, spec)
    _readable(out / SPEC_FILE)
    return spec


def _readable(path: Path) -> None:
    """The usual file mode (umask applied) instead of the 0600 of the temporary file it was written as."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


class OnnxPipeline:
    """Run exported graphs with onnxruntime, the way :class:`LRReIDPipeline` runs the networks.

    Example::

        >>> onnx_pipe = OnnxPipeline("exported/")
        >>> feats, scales = onnx_pipe.embed_probes([lr_tensor])      # [3, h, w] tensors in [0, 1]
    """

    def __init__(self, folder: str | os.PathLike):
        import json

        import onnxruntime as ort

        self.folder = Path(folder)
        self.spec = json.loads((self.folder / SPEC_FILE).read_text())
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.sessions = {name: ort.InferenceSession(str(self.folder / g["file"]), options,
                                                    providers=["CPUExecutionProvider"])
                         for name, g in self.spec["graphs"].items()}

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        graph = self.spec["graphs"][name]
        return self.sessions[name].run(None, {graph["input"]["name"]: x.astype(np.float32)})[0]

    def embed_gallery(self, images: list[torch.Tensor]) -> np.ndarray:
        from lrreid.inference.pipeline import resize_gallery

        size = tuple(self.spec["input_size"])
        return np.concatenate([self._run("reid", resize_gallery(im[None], size).numpy()) for im in images])

    def embed_probes(self, images: list[torch.Tensor], scale: int | None = None) -> tuple[np.ndarray, list[int]]:
        feats, scales = [], []
        for im in images:
            x = im[None].numpy()
            fixed = scale or self.spec["fixed_scale"]
            if any(n.startswith("lr_to_features") for n in self.spec["graphs"]):
                name = next(n for n in self.spec["graphs"] if n.startswith("lr_to_features"))
                feats.append(self._run(name, x))
                scales.append(int(name.rsplit("x", 1)[1]))
                continue
            s = int(fixed) if fixed else self.spec["scales"][int(self._run("predictor", x).argmax())]
            feats.append(self._run("reid", self._run(f"sr_x{s}", x)))
            scales.append(s)
        return np.concatenate(feats), scales
