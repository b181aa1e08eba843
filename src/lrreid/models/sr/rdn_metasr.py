"""Meta-SR with an RDN body: Hu et al., "Meta-SR: A Magnification-Arbitrary Network for
Super-Resolution", CVPR 2019; the SR module G of PRI (Han et al., ECCV 2020, Sec. 3.3).

::

    LR [0,1] * 255 -> sub_mean
      -> SFENet1 (conv 3x3, 3 -> G0) = F_-1 -> SFENet2 (conv 3x3)            shallow features
      -> RDB_1 ... RDB_D, each: C x (conv 3x3 -> ReLU, densely concatenated, growth G)
                               -> LFF (1x1 conv back to G0) + input          residual dense blocks
      -> GFF (1x1 conv on all D RDB outputs, then conv 3x3) + F_-1           global feature fusion
      -> meta-upscale: for every output pixel (i, j), a 3x3 filter (G0 -> 3 channels)
         predicted by P2W from (1/scale, offset_i, offset_j), applied to the G0 features
         around its source LR pixel (floor(i/scale), floor(j/scale))
      -> add_mean -> / 255 -> SR [0,1]

Pos2Weight (P2W) is FC(3 -> 256) -> ReLU -> FC(256 -> 3*3*G0*3).  The offset of output row i
is ``i/scale - floor(i/scale)``; for ``scale = P/q`` (a fraction in lowest terms) it only depends
on ``i mod P``, so only P x P distinct filters exist.  They are computed once per forward (and
cached per scale at inference), and the upscale is done as P x P strided convolutions grouped by
their start phase, so its cost is that of one 3x3 conv at the output resolution.  Scales must be
fractions with a denominator of at most 20 (x2.7 = 27/10, x7/3 ...): Meta-SR trains on x1.1 ...
x4.0 in steps of 0.1.

Parameter names follow the public release (XuecaiHu/Meta-SR-Pytorch, ``model_1000.pt``):
``sub_mean``/``add_mean`` (EDSR's MeanShift, a 1x1 conv with weight and bias), ``SFENet1/2``,
``RDBs.<i>.convs.<j>.conv.0``, ``RDBs.<i>.LFF``, ``GFF.0/1``, ``P2W.meta_block.0/2``.
"""
from __future__ import annotations

import math
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from lrreid.errors import ConfigError
from lrreid.models.sr.base import SRModel, output_size

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
MAX_SCALE_DENOMINATOR = 20


class MeanShift(nn.Conv2d):
    """EDSR's mean shift: a 1x1 conv fixed to ``x + sign * rgb_range * mean`` (not trained)."""

    def __init__(self, rgb_range: float, sign: float = -1.0, mean_rgb=DIV2K_MEAN):
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(mean_rgb))
        self.requires_grad_(False)


class _Concatenation:
    """What autograd keeps instead of a concatenation: the parts (see :func:`on_concatenation`)."""

    __slots__ = ("parts",)

    def __init__(self, parts):
        self.parts = tuple(parts)


def on_concatenation(module: nn.Module, parts: list[torch.Tensor]) -> torch.Tensor:
    """``module(torch.cat(parts, dim=1))``, with autograd keeping ``parts`` instead of the concatenation.

    Memory: in a residual dense block every conv reads the concatenation of all earlier outputs,
    and autograd keeps each of those growing copies for the backward pass (16, 32, 48, 64 and 80
    channels for C = 4: ~4x the features themselves).  The parts are kept anyway (each layer's
    ReLU keeps its output), so saving them and concatenating again in the backward pass gives the
    same gradients bit for bit and G's training graph ~3.5x smaller (issue 12: the bulk of PRI's
    peak RSS on CPU after F).  Without gradients it is exactly ``module(torch.cat(parts, 1))``.
    """
    x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    # tracing (ONNX export, torch.compile) takes the plain graph: the hooks are for eager training only
    if len(parts) == 1 or not torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return module(x)

    kept = _Concatenation(parts)
    # autograd holds on to the hooks as long as the graph lives: they must not hold ``x`` itself
    target = [x]
    del x

    def pack(t: torch.Tensor):
        return kept if target and t is target[0] else t

    def unpack(packed):
        return torch.cat(packed.parts, dim=1) if isinstance(packed, _Concatenation) else packed

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        out = module(target[0])
    target.clear()
    return out


class DenseLayer(nn.Module):
    """One conv of an RDB (the release's ``RDB_Conv``): conv 3x3 -> ReLU, output appended to the input."""

    def __init__(self, in_channels: int, growth: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, growth, kernel_size, padding=kernel_size // 2), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(x)], dim=1)


class ResidualDenseBlock(nn.Module):
    """RDB (Zhang et al., CVPR 2018): C densely connected convs, local feature fusion (LFF), + input."""

    def __init__(self, G0: int, G: int, C: int, kernel_size: int = 3):
        super().__init__()
        self.convs = nn.Sequential(*[DenseLayer(G0 + c * G, G, kernel_size) for c in range(C)])
        self.LFF = nn.Conv2d(G0 + C * G, G0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # = self.LFF(self.convs(x)) + x, without autograd keeping every intermediate concatenation
        parts = [x]
        for layer in self.convs:
            parts.append(on_concatenation(layer.conv, parts))
        return on_concatenation(self.LFF, parts) + x


class Pos2Weight(nn.Module):
    """The weight-prediction network: (1/scale, offset_h, offset_w) -> a 3x3 filter G0 -> 3."""

    def __init__(self, in_channels: int, kernel_size: int = 3, out_channels: int = 3, hidden: int = 256):
        super().__init__()
        self.in_channels, self.kernel_size, self.out_channels = in_channels, kernel_size, out_channels
        self.meta_block = nn.Sequential(
            nn.Linear(3, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, kernel_size * kernel_size * in_channels * out_channels),
        )

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """``positions [N, 3]`` -> conv weights ``[N, out, in, k, k]``.

        The release reads each predicted vector as ``[in * k * k, out]`` (unfold order: channel,
        then kernel row, then kernel column), which is what the reshape below undoes.
        """
        k, cin, cout = self.kernel_size, self.in_channels, self.out_channels
        w = self.meta_block(positions).view(-1, cin, k, k, cout)
        return w.permute(0, 4, 1, 2, 3)


def scale_fraction(scale: float) -> tuple[int, int]:
    """``scale`` as ``(P, q)`` with ``P/q == scale`` in lowest terms, q <= 20.

    >>> scale_fraction(2.7)
    (27, 10)
    """
    frac = Fraction(scale).limit_denominator(MAX_SCALE_DENOMINATOR)
    if abs(float(frac) - scale) > 1e-6 * scale:
        raise ConfigError(
            f"metasr_rdn: scale {scale:g} is not a fraction with denominator <= {MAX_SCALE_DENOMINATOR} "
            "(use e.g. 2.7 = 27/10 or 7/3)"
        )
    return frac.numerator, frac.denominator


class MetaRDN(SRModel):
    """Meta-SR's RDN: any scale >= 1 (``supported_scales = None``), including x1 and x2.7.

    ``G0`` feature channels, ``D`` residual dense blocks of ``C`` convs with growth ``G`` (the RDN
    paper's letters; (64, 16, 8, 64) is the released configuration).  ``rgb_range`` is the pixel
    range inside the network (255 as in the release); inputs and outputs are in [0, 1].

    Example::

        net = MetaRDN(G0=16, D=2, C=2, G=8)
        net(torch.rand(2, 3, 20, 10), 2.7).shape     # torch.Size([2, 3, 54, 27])
    """

    supported_scales = None
    importer = "metasr_release"
    name = "metasr_rdn"

    def __init__(self, G0: int = 64, D: int = 16, C: int = 8, G: int = 64, kernel_size: int = 3, rgb_range: float = 255.0):
        super().__init__()
        self.G0, self.D, self.C, self.G = G0, D, C, G
        self.rgb_range = float(rgb_range)
        pad = kernel_size // 2
        self.sub_mean = MeanShift(self.rgb_range, sign=-1.0)
        self.add_mean = MeanShift(self.rgb_range, sign=+1.0)
        self.SFENet1 = nn.Conv2d(3, G0, kernel_size, padding=pad)
        self.SFENet2 = nn.Conv2d(G0, G0, kernel_size, padding=pad)
        self.RDBs = nn.ModuleList([ResidualDenseBlock(G0, G, C, kernel_size) for _ in range(D)])
        self.GFF = nn.Sequential(nn.Conv2d(D * G0, G0, 1), nn.Conv2d(G0, G0, kernel_size, padding=pad))
        self.P2W = Pos2Weight(G0)
        self._filter_cache: dict[tuple, tuple[tuple, torch.Tensor]] = {}

    # ------------------------------------------------------------------ body

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The G0-channel LR feature map that the meta-upscale turns into the SR image."""
        x = self.sub_mean(x * self.rgb_range)
        f_1 = self.SFENet1(x)
        x = self.SFENet2(f_1)
        outs = []
        for rdb in self.RDBs:
            x = rdb(x)
            outs.append(x)
        return on_concatenation(self.GFF, outs) + f_1

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        self.check_input(x)
        s = self.check_scale(scale)
        P, q = scale_fraction(s)
        feats = self.features(x)
        out = self.meta_upscale(feats, P, q, output_size(x.shape[-2], x.shape[-1], s))
        return self.finish(self.add_mean(out) / self.rgb_range)

    # ------------------------------------------------------------------ meta-upscale

    def phase_filters(self, P: int, q: int, like: torch.Tensor) -> torch.Tensor:
        """Filters ``[P, P, 3, G0, 3, 3]`` for output phases (i mod P, j mod P) at scale P/q."""
        cacheable = not torch.is_grad_enabled()
        key = (P, q, like.device, like.dtype)
        version = tuple((p._version, p.data_ptr()) for p in self.P2W.parameters())
        if cacheable and key in self._filter_cache and self._filter_cache[key][0] == version:
            return self._filter_cache[key][1]
        offsets = torch.tensor([(a * q % P) / P for a in range(P)], dtype=like.dtype, device=like.device)
        off_h, off_w = torch.meshgrid(offsets, offsets, indexing="ij")
        inv_scale = torch.full_like(off_h, q / P)
        positions = torch.stack([inv_scale, off_h, off_w], dim=-1).view(-1, 3)
        weights = self.P2W(positions)
        filters = weights.view(P, P, *weights.shape[1:])
        if cacheable:
            self._filter_cache[key] = (version, filters)
        return filters

    def meta_upscale(self, feats: torch.Tensor, P: int, q: int, out_hw: tuple[int, int]) -> torch.Tensor:
        """Apply each output pixel's predicted filter to the features around its source LR pixel.

        Output row ``i = a + P*m`` (phase ``a``) reads LR row ``src[a] + q*m`` with
        ``src[a] = floor(a*q/P)``; the same holds for columns.  Phases whose ``src`` agree mod q
        read the same strided LR grid, so one strided conv serves all of them.
        """
        B, _, h, w = feats.shape
        H, W = out_hw
        filters = self.phase_filters(P, q, feats)
        src = [a * q // P for a in range(P)]
        Mh, Mw = math.ceil(H / P), math.ceil(W / P)  # outputs per phase, before cropping to H x W
        # zero padding: 1 for the 3x3 support, plus rows/cols read only by outputs cropped away
        extra_h = max(0, src[-1] + q * (Mh - 1) + 1 - h)
        extra_w = max(0, src[-1] + q * (Mw - 1) + 1 - w)
        padded = F.pad(feats, (1, 1 + extra_w, 1, 1 + extra_h))
        groups: dict[int, list[int]] = {}
        for a, r in enumerate(src):
            groups.setdefault(r % q, []).append(a)
        phases: dict[tuple[int, int], torch.Tensor] = {}
        for r0, rows in groups.items():
            for c0, cols in groups.items():
                weight = filters[rows][:, cols].reshape(-1, *filters.shape[-3:])
                y = F.conv2d(padded[:, :, r0:, c0:], weight, stride=q)
                y = y.view(B, len(rows), len(cols), 3, y.shape[-2], y.shape[-1])
                for ia, a in enumerate(rows):
                    da = src[a] // q
                    for ib, b in enumerate(cols):
                        db = src[b] // q
                        phases[a, b] = y[:, ia, ib, :, da:da + Mh, db:db + Mw]
        out = torch.stack([phases[a, b] for a in range(P) for b in range(P)], dim=2)
        out = out.view(B, 3, P, P, Mh, Mw).permute(0, 1, 4, 2, 5, 3).reshape(B, 3, Mh * P, Mw * P)
        return out[:, :, :H, :W]
