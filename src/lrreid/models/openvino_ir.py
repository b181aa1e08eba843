"""OpenVINO IR (``.xml`` + ``.bin``) -> the state dict, constructor arguments and input convention of an lrreid module.

Intel's Open Model Zoo person re-ID models (person-reidentification-retail-0277/0286/0287/0288) are
OSNet variants whose graphs keep the PyTorch parameter names where a layer was not changed by the
conversion (``conv2.0.conv2a.conv1.weight``); where a BatchNorm was folded into a convolution the
folded constant lost its name.  The reader therefore walks the graph from those named anchors, the
way the network is wired (block input -> 1x1 -> four streams of pointwise + depthwise convolutions
-> gate -> sum -> 1x1 -> residual), and names every constant it meets after the module
:class:`~lrreid.models.reid.osnet_omz.OSNetOMZ` that computes the same function.  Any other graph
(another network, a detector, a damaged file) is refused with one line that says what was
expected.  The graph is read with the ``openvino`` package; nothing here parses XML or binary.

FP16 constants (decompressed by ``Convert`` ops in the graph) are up-cast to float32.  The
preprocessing in front of the network (channel reversal, mean subtraction, scaling) becomes the
module's :class:`~lrreid.models.reid.encoder.InputSpec` for RGB images in [0, 1].

Example::

    ir = read_openvino_ir("../shared/weights/omz/person-reidentification-retail-0277/FP16/person-reidentification-retail-0277.xml")
    ir.architecture, ir.kwargs["channels"]       # ('osnet_omz', (64, 256, 384, 512))
    net = ir.build()                             # OSNetOMZ with the file's weights, strictly loaded
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lrreid.errors import CheckpointError
from lrreid.models.reid.encoder import IMAGENET_MEAN, IMAGENET_STD, InputSpec

STREAMS = {"conv2a": 1, "conv2b": 2, "conv2c": 3, "conv2d": 4}
_BLOCK_ANCHOR = re.compile(r"^(?:self\.)?(conv(\d+)\.(\d+))\.conv2a\.conv1\.weight(?:_compressed)?$")


class _Reject(Exception):
    """The graph is not the expected network; the message says where it differs."""


@dataclass
class OpenVINONetwork:
    """What :func:`read_openvino_ir` found: the module to build, its weights and its input convention."""

    path: Path
    architecture: str  # "osnet_omz"
    kwargs: dict
    state: dict[str, torch.Tensor]
    input_spec: InputSpec
    precision: str = "FP32"
    notes: list[str] = field(default_factory=list)

    def build(self) -> torch.nn.Module:
        """The PyTorch module with these weights (strict load: every parameter comes from the file)."""
        from lrreid.models.reid.osnet_omz import OSNetOMZ
        from lrreid.models.weights import load_weights

        net = OSNetOMZ(**self.kwargs)
        load_weights(net, self.state, strict=True, label=str(self.path))
        net.input_spec = self.input_spec
        return net


def read_openvino_ir(path: str | os.PathLike) -> OpenVINONetwork:
    """Read an OpenVINO IR of an OSNet re-ID network (see the module doc); :class:`CheckpointError` otherwise."""
    xml = Path(path)
    if xml.suffix.lower() == ".bin":
        xml = xml.with_suffix(".xml")
    if not xml.is_file():
        raise CheckpointError(f"{xml}: no such OpenVINO IR graph file (.xml)")
    weights = xml.with_suffix(".bin")
    if not weights.is_file():
        raise CheckpointError(f"{xml}: OpenVINO IR without its weights file {weights.name} beside it")
    try:
        import openvino as ov
    except ImportError:
        raise CheckpointError(f"{xml}: reading OpenVINO IR needs the openvino package (pip install openvino)") from None
    try:
        model = ov.Core().read_model(str(xml), str(weights))
    except Exception as exc:  # noqa: BLE001 - openvino raises RuntimeError subclasses with multi-line text
        raise CheckpointError(f"{xml}: not a readable OpenVINO IR ({_openvino_reason(exc, weights)})") from None
    try:
        return _OSNetReader(model, xml).read()
    except _Reject as exc:
        raise CheckpointError(f"{xml}: not an OSNet person re-ID graph as in Intel's Open Model Zoo ({exc})") from None
    except (ValueError, RuntimeError, IndexError) as exc:  # a constant that openvino cannot read back (damaged .bin)
        raise CheckpointError(f"{xml}: damaged OpenVINO IR ({str(exc).strip().splitlines()[0][:160]})") from None


class _OSNetReader:
    """One pass over an IR graph that names its constants after :class:`OSNetOMZ`'s parameters."""

    def __init__(self, model, xml: Path):
        self.model = model
        self.xml = xml
        self.ops = list(model.get_ordered_ops())
        self.consumers: dict[int, list] = defaultdict(list)
        self.named: dict[str, object] = {}
        for op in self.ops:
            for inp in op.inputs():
                self.consumers[id_of(inp.get_source_output().get_node())].append(op)
            if op.get_type_name() == "Constant":
                self.named[_clean_name(op.get_friendly_name())] = op
        self.state: dict[str, torch.Tensor] = {}
        self.used: set[int] = set()
        self.fp16 = False

    # -------------------------------------------------------------------- graph helpers
    def const(self, op) -> np.ndarray:
        """The value of a constant input, through the graph's decompression (Convert) of FP16 weights."""
        if op.get_type_name() == "Convert":
            self.fp16 = True
            op = op.input_value(0).get_node()
        if op.get_type_name() != "Constant":
            raise _Reject(f"expected a constant, found {op.get_type_name()} {op.get_friendly_name()!r}")
        self.used.add(id_of(op))
        value = op.get_data()
        expected = int(np.prod(tuple(op.get_output_shape(0)))) if op.get_output_shape(0) else 1
        if value.size != expected:
            raise ValueError(f"constant {op.get_friendly_name()!r} holds {value.size} values, expected {expected}")
        return np.array(value, dtype=np.float32 if value.dtype.kind == "f" else value.dtype)

    @staticmethod
    def src(op, i: int = 0):
        return op.input_value(i).get_node()

    def next(self, op, kind: str):
        """The one consumer of ``op`` of type ``kind``."""
        found = [c for c in self.consumers[id_of(op)] if c.get_type_name() == kind]
        if len(found) != 1:
            have = ", ".join(sorted({c.get_type_name() for c in self.consumers[id_of(op)]})) or "nothing"
            raise _Reject(f"after {op.get_type_name()} {op.get_friendly_name()!r} expected one {kind}, found {have}")
        return found[0]

    def data_and_const(self, op):
        """(data input, constant value) of a binary op with one constant input."""
        a, b = self.src(op, 0), self.src(op, 1)
        if _is_const(b):
            return a, self.const(b)
        if _is_const(a):
            return b, self.const(a)
        raise _Reject(f"{op.get_type_name()} {op.get_friendly_name()!r} has no constant input")

    def put(self, name: str, value: np.ndarray, shape=None) -> None:
        if name in self.state:
            raise _Reject(f"{name} found twice in the graph")
        t = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        self.state[name] = t.reshape(shape) if shape is not None else t

    def conv_bias(self, conv, name: str, *, relu: bool):
        """A convolution, its bias Add and (optionally) ReLU: stores ``name.weight``/``name.bias``; returns the last op."""
        w = self.const(self.src(conv, 1))
        if conv.get_type_name() == "GroupConvolution":  # [groups, out/groups, in/groups, kh, kw]
            w = w.reshape(w.shape[0] * w.shape[1], *w.shape[2:])
        self.put(f"{name}.weight", w)
        add = self.next(conv, "Add")
        _, bias = self.data_and_const(add)
        self.put(f"{name}.bias", bias.reshape(-1))
        return self.next(add, "Relu") if relu else add

    def affine_after(self, op, name: str | None, channels: int):
        """The optional Multiply (weight) and Add (bias) by constants after ``op``: ``name.weight/bias``
        (``name=None``: only walked past); returns the last op."""
        weight, bias = np.ones(channels, np.float32), np.zeros(channels, np.float32)
        cur = op
        nxt = [c for c in self.consumers[id_of(cur)] if c.get_type_name() == "Multiply" and any(_is_const(self.src(c, i)) for i in (0, 1))]
        if len(nxt) == 1 and len(self.consumers[id_of(cur)]) == 1:
            cur = nxt[0]
            weight = self.data_and_const(cur)[1].reshape(-1)
        nxt = [c for c in self.consumers[id_of(cur)] if c.get_type_name() == "Add" and any(_is_const(self.src(c, i)) for i in (0, 1))]
        if len(nxt) == 1 and len(self.consumers[id_of(cur)]) == 1:
            cur = nxt[0]
            bias = self.data_and_const(cur)[1].reshape(-1)
        if weight.size == 1:
            weight = np.full(channels, float(weight[0]), np.float32)
        if bias.size == 1:
            bias = np.full(channels, float(bias[0]), np.float32)
        if name is not None:
            self.put(f"{name}.weight", weight)
            self.put(f"{name}.bias", bias)
        return cur

    def anchor(self, name: str):
        if name not in self.named:
            raise _Reject(f"no constant named {name!r}")
        return self.named[name]

    def conv_using(self, weight_name: str):
        const = self.anchor(weight_name)
        users = self.consumers[id_of(const)]
        if users and users[0].get_type_name() == "Convert":
            users = self.consumers[id_of(users[0])]
        convs = [u for u in users if u.get_type_name() in ("Convolution", "MatMul")]
        if not convs:
            raise _Reject(f"constant {weight_name!r} feeds no convolution")
        return convs[0]

    # -------------------------------------------------------------------- the network
    def read(self) -> OpenVINONetwork:
        params = self.model.get_parameters()
        if len(params) != 1:
            raise _Reject(f"{len(params)} inputs, expected one image input")
        shape = params[0].get_partial_shape()
        if shape.rank.is_dynamic or shape.rank.get_length() != 4 or shape[2].is_dynamic or shape[3].is_dynamic:
            raise _Reject(f"input shape {shape}, expected [N,3,H,W] with a fixed H and W")
        height, width = shape[2].get_length(), shape[3].get_length()
        if len(self.model.outputs) != 1:
            raise _Reject(f"{len(self.model.outputs)} outputs, expected one embedding")
        if "conv1.conv.weight" not in self.named:
            sample = ", ".join(sorted(k for k in self.named if not k.startswith("Constant"))[:3]) or "unnamed constants"
            raise _Reject(f"no constant named 'conv1.conv.weight'; it has {sample}")

        spec_mean, spec_std, first, order = self.preprocessing(params[0])
        # input_norm: MVN over H, W + affine
        mvn = first if first.get_type_name() == "MVN" else None
        if mvn is None:
            raise _Reject(f"expected an instance norm (MVN) on the input, found {first.get_type_name()}")
        cur = self.affine_after(mvn, "input_norm", 3)
        conv1 = self.conv_using("conv1.conv.weight")
        if id_of(self.src(conv1, 0)) != id_of(cur):
            raise _Reject("conv1 does not follow the input's instance norm")
        self.put("conv1.conv.weight", self.const(self.src(conv1, 1)))
        channels0 = self.state["conv1.conv.weight"].shape[0]
        cur = self.affine_after(self.next(conv1, "MVN"), "conv1.bn", channels0)
        cur = self.next(self.next(cur, "Relu"), "MaxPool")

        blocks = self.block_names()
        gates: list[list[str]] = []
        channels = [channels0]
        gate_reduction = None
        stages = sorted({s for s, _ in blocks})
        if stages != [2, 3, 4]:
            raise _Reject(f"stages {stages}, expected conv2, conv3 and conv4")
        for stage in stages:
            count = max(b for s, b in blocks if s == stage) + 1
            kinds = []
            for b in range(count):
                cur, kind, out_ch, red = self.block(f"conv{stage}.{b}", cur)
                kinds.append(kind)
                gate_reduction = red or gate_reduction
            channels.append(out_ch)
            gates.append(kinds)
            if stage < 4:  # transition: 1x1 + ReLU + 2x2 average pool
                conv = self.next(cur, "Convolution")
                cur = self.next(self.conv_bias(conv, f"conv{stage}.{count}.0.conv", relu=True), "AvgPool")
        cur = self.conv_bias(self.next(cur, "Convolution"), "conv5.conv", relu=True)
        gdc = self.next(cur, "GroupConvolution")
        cur = self.conv_bias(gdc, "global_pool", relu=False)
        kh, kw = self.state["global_pool.weight"].shape[-2:]
        self.state["global_pool.weight"] = self.state["global_pool.weight"].reshape(channels[-1], 1, kh, kw)
        cur = self.skip(cur, ("Reshape", "Squeeze"))
        matmul = self.next(cur, "MatMul")
        w = self.const(self.src(matmul, 1))
        attrs = matmul.get_attributes()
        if not attrs.get("transpose_b", False):
            w = w.T
        self.put("fc.0.weight", w)
        embedding_dim = w.shape[0]
        cur = self.head_affine(matmul, embedding_dim)
        prelu = self.next(cur, "PRelu")
        slope = self.data_and_const(prelu)[1].reshape(-1)
        if slope.size != 1:
            raise _Reject(f"PReLU with {slope.size} slopes, expected one")
        self.put("fc.2.weight", slope)
        kwargs = {"channels": tuple(int(c) for c in channels), "embedding_dim": int(embedding_dim),
                  "gates": tuple(tuple(g) for g in gates), "input_size": (height, width),
                  "gate_reduction": int(gate_reduction or 16)}
        if (kh, kw) != (height // 16, width // 16):
            raise _Reject(f"global pooling kernel {kh}x{kw} for a {height}x{width} input, expected {height // 16}x{width // 16}")
        source = f"OpenVINO IR: {'BGR' if order == 'BGR' else 'RGB'} 0-255" + (
            ", mean/std applied inside the graph" if spec_mean != (0.0, 0.0, 0.0) else "")
        spec = InputSpec(size=(height, width), mean=spec_mean, std=spec_std, distance="cosine", source=source)
        return OpenVINONetwork(path=self.xml, architecture="osnet_omz", kwargs=kwargs, state=self.state,
                               input_spec=spec, precision="FP16" if self.fp16 else "FP32")

    def head_affine(self, matmul, dim: int):
        """The constant Add/Multiply ops between the fc MatMul and the PReLU -> ``fc.0.bias``, ``fc.1.weight/bias``.

        Intel's graphs keep them apart (bias, then the BatchNorm1d as scale and shift); a graph whose
        converter fused them is composed into one scale and shift (the same function)."""
        steps, cur = [], matmul
        for _ in range(8):
            cur = self.skip(cur, ("Reshape", "Squeeze", "Unsqueeze"))
            users = [u for u in self.consumers[id_of(cur)] if u.get_type_name() != "ShapeOf"]
            if len(users) != 1:
                raise _Reject("the embedding head branches")
            op = users[0]
            if op.get_type_name() == "PRelu":
                break
            if op.get_type_name() not in ("Add", "Multiply"):
                raise _Reject(f"unexpected {op.get_type_name()} between fc.0 and its PReLU")
            steps.append((op.get_type_name(), self.data_and_const(op)[1].reshape(-1) * np.ones(dim, np.float32)))
            cur = op
        kinds = [k for k, _ in steps]
        if kinds == ["Add", "Multiply", "Add"]:
            b0, w1, b1 = (v for _, v in steps)
        else:
            b0, w1, b1 = np.zeros(dim, np.float32), np.ones(dim, np.float32), np.zeros(dim, np.float32)
            for kind, v in steps:
                if kind == "Multiply":
                    w1, b1 = w1 * v, b1 * v
                else:
                    b1 = b1 + v
        self.put("fc.0.bias", b0)
        self.put("fc.1.weight", w1)
        self.put("fc.1.bias", b1)
        return cur

    def skip(self, op, kinds: tuple[str, ...]):
        """Follow single-consumer shape-only ops (Reshape, ...)."""
        while True:
            users = self.consumers[id_of(op)]
            shaped = [u for u in users if u.get_type_name() in kinds]
            if len(shaped) == 1 and all(u.get_type_name() in kinds + ("ShapeOf",) for u in users):
                op = shaped[0]
            else:
                return op

    def preprocessing(self, param):
        """Channel order, mean and std in front of the network, as an lrreid InputSpec's mean/std.

        Returns ``(mean, std, first op of the network, order)``: the graph maps its 0-255 input
        ``x`` to ``(x[order] - m) * s``; for RGB images in [0, 1] that is ``(x - m/255) / (1/(255 s))``.
        """
        cur, order = param, "RGB"
        mean = np.zeros(3, np.float32)
        scale = np.ones(3, np.float32)
        while True:
            users = self.consumers[id_of(cur)]
            if len(users) != 1:
                raise _Reject(f"the input feeds {len(users)} ops, expected a chain")
            op = users[0]
            kind = op.get_type_name()
            if kind == "Gather":
                idx = self.const(self.src(op, 1)).astype(np.int64).reshape(-1).tolist()
                if sorted(idx) != [0, 1, 2]:
                    raise _Reject(f"input channel gather {idx}, expected a permutation of 3 channels")
                order = "BGR" if idx == [2, 1, 0] else "RGB"
                if idx not in ([2, 1, 0], [0, 1, 2]):
                    raise _Reject(f"input channel order {idx} is neither RGB nor BGR")
            elif kind == "Subtract":
                mean = mean + self.data_and_const(op)[1].reshape(-1) * np.ones(3, np.float32)
            elif kind == "Multiply":
                scale = scale * self.data_and_const(op)[1].reshape(-1) * np.ones(3, np.float32)
            elif kind == "Divide":
                scale = scale / (self.data_and_const(op)[1].reshape(-1) * np.ones(3, np.float32))
            elif kind == "Convert":
                pass
            else:
                break
            cur = op
        if order == "RGB" and not mean.any() and (scale == 1).all():
            # no preprocessing in the graph: the network takes the ImageNet-normalised RGB input itself
            return IMAGENET_MEAN, IMAGENET_STD, op, order
        spec_mean = tuple(float(m) / 255.0 for m in mean)
        spec_std = tuple(1.0 / (255.0 * float(s)) for s in scale)
        return spec_mean, spec_std, op, order

    def block_names(self) -> list[tuple[int, int]]:
        found = set()
        for name in self.named:
            m = _BLOCK_ANCHOR.match(name)
            if m:
                found.add((int(m.group(2)), int(m.group(3))))
        if not found:
            raise _Reject("no OS block (no constant named convS.B.conv2a.conv1.weight)")
        return sorted(found)

    def block(self, prefix: str, block_input):
        """One OS block from its input op; returns ``(output op, gate kind, out channels, gate reduction)``."""
        conv2a = self.conv_using(f"{prefix}.conv2a.conv1.weight")
        x1 = self.src(conv2a, 0)
        if x1.get_type_name() != "Relu":
            raise _Reject(f"{prefix}.conv2a does not follow a ReLU")
        add = self.src(x1, 0)
        conv1 = self.src(add, 0) if self.src(add, 0).get_type_name() == "Convolution" else self.src(add, 1)
        if id_of(self.src(conv1, 0)) != id_of(block_input):
            raise _Reject(f"{prefix} does not start where the previous layer ends")
        self.conv_bias(conv1, f"{prefix}.conv1.conv", relu=True)
        gate_kind, reduction, gated = None, None, None
        for stream, depth in STREAMS.items():
            names = [f"{prefix}.{stream}"] if depth == 1 else [f"{prefix}.{stream}.{i}" for i in range(depth)]
            for layer in names:
                conv = self.conv_using(f"{layer}.conv1.weight")
                self.put(f"{layer}.conv1.weight", self.const(self.src(conv, 1)))
                out = self.conv_bias(self.next(conv, "GroupConvolution"), f"{layer}.conv2", relu=True)
            kind, red, gated = self.gate(out, prefix, record=(stream == "conv2a"))
            gate_kind = gate_kind or kind
            reduction = reduction or red
            if kind != gate_kind:
                raise _Reject(f"{prefix}: streams with different gates")
        total = self.next(gated, "Add")  # ((a + b) + c) + d: the last stream's gate feeds the final sum
        conv3 = self.next(total, "Convolution")
        x3 = self.conv_bias(conv3, f"{prefix}.conv3.conv", relu=False)
        residual = self.next(x3, "Add")
        other = self.src(residual, 1) if id_of(self.src(residual, 0)) == id_of(x3) else self.src(residual, 0)
        if id_of(other) != id_of(block_input):
            down = self.src(other, 0) if self.src(other, 0).get_type_name() == "Convolution" else self.src(other, 1)
            if down.get_type_name() != "Convolution" or id_of(self.src(down, 0)) != id_of(block_input):
                raise _Reject(f"{prefix}: the residual is neither the block input nor a 1x1 projection of it")
            self.conv_bias(down, f"{prefix}.downsample.conv", relu=False)
        out_channels = int(self.state[f"{prefix}.conv3.conv.weight"].shape[0])
        return self.next(residual, "Relu"), gate_kind, out_channels, reduction

    def norm_groups(self, mvn, channels: int, prefix: str) -> int:
        """Groups of a gate's MVN: input [N, G, C/G] normalised over its last axis, or [N, C, 1, 1] over H, W."""
        shape = tuple(mvn.get_input_shape(0))
        axes = sorted(int(a) % len(shape) for a in self.const(self.src(mvn, 1)).reshape(-1)) if mvn.get_input_size() > 1 \
            else sorted(int(a) for a in mvn.get_attributes().get("axes", []))
        if len(shape) == 3 and axes == [2] and shape[1] * shape[2] == channels:
            return int(shape[1])
        if len(shape) == 4 and axes == [2, 3]:
            return channels
        if len(shape) == 4 and axes == [1, 2, 3]:
            return 1
        raise _Reject(f"{prefix}: gate normalises a {list(shape)} tensor over axes {axes}, expected a group norm")

    def gate(self, stream_out, prefix: str, *, record: bool):
        """The gate after one stream: ("fc" | "gn<groups>", reduction, the x * gate Multiply)."""
        pool = self.next(stream_out, "ReduceMean")
        cur, kind, reduction = pool, None, None
        for _ in range(12):
            users = [u for u in self.consumers[id_of(cur)] if u.get_type_name() != "ShapeOf"]
            if len(users) != 1:
                raise _Reject(f"{prefix}: gate branches unexpectedly")
            op = users[0]
            t = op.get_type_name()
            if t == "Convolution" and kind is None:
                kind = "fc"
                if record:
                    mid = self.conv_bias(op, f"{prefix}.gate.fc1", relu=True)
                    fc2 = self.next(mid, "Convolution")
                    cur = self.conv_bias(fc2, f"{prefix}.gate.fc2", relu=False)
                    ch, hidden = self.state[f"{prefix}.gate.fc1.weight"].shape[:2][::-1]
                    reduction = int(hidden // ch) if ch else None
                else:
                    cur = self.next(self.next(self.next(self.next(op, "Add"), "Relu"), "Convolution"), "Add")
                continue
            if t == "MVN" and kind is None:
                channels = int(stream_out.get_output_shape(0)[1])
                kind = f"gn{self.norm_groups(op, channels, prefix)}"
                after = self.skip(op, ("Reshape", "Squeeze", "Unsqueeze"))
                # the four streams share one gate module: its constants are read from the first
                cur = self.affine_after(after, f"{prefix}.gate" if record else None, channels)
                if record:
                    self.state[f"{prefix}.gate.groups"] = torch.tensor(int(kind[2:]), dtype=torch.long)
                continue
            if t in ("Reshape", "Squeeze", "Unsqueeze"):
                cur = op
                continue
            if t == "Sigmoid":
                if kind is None:
                    raise _Reject(f"{prefix}: a gate with neither fc layers nor an instance norm")
                mul = self.next(op, "Multiply")
                return kind, reduction, mul
            raise _Reject(f"{prefix}: unexpected {t} in a channel gate")
        raise _Reject(f"{prefix}: channel gate too long")


def _openvino_reason(exc: Exception, weights: Path) -> str:
    """One line from openvino's multi-line error: the sentence that says what is wrong, not where."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    said = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    if any("weights" in ln.lower() and "bin" in ln.lower() for ln in lines):
        return f"{weights.name} ({weights.stat().st_size} bytes) is shorter than the graph needs: truncated or of another model"
    return (said[0] if said else lines[0] if lines else type(exc).__name__)[:160]


def id_of(op) -> str:
    return op.get_friendly_name()


def _is_const(op) -> bool:
    t = op.get_type_name()
    return t == "Constant" or (t == "Convert" and op.input_value(0).get_node().get_type_name() == "Constant")


def _clean_name(name: str) -> str:
    name = name[: -len("_compressed")] if name.endswith("_compressed") else name
    return name[len("self."):] if name.startswith("self.") else name
