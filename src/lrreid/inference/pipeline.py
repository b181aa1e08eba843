"""Predict, recover, identify: the inference path of an LR re-ID model, fast.

Gallery (HR) images are resized to the re-ID input size (PIL's antialiased bicubic on uint8, exactly
as the evaluation loads them) and embedded.  Probe (LR) images go
through three networks: the scale predictor chooses a scale factor per probe (the argmax of its
logits, PRI Sec. 3.2) unless a fixed scale is given, the SR network super-resolves the probe at that
scale, and the re-ID network embeds the result resized to the input size.

What makes it fast (measured in ``benchmarks/inference.py``):

- probes are grouped by chosen scale, so every SR call is one batched call at one scale; on the
  fast path probes of one scale whose sizes round up to the same multiple of ``sr_size_multiple``
  (8 px) share one SR call on a zero-padded canvas, run by a copy of the SR network whose every
  convolution output is zeroed outside each probe's own region (:class:`CanvasMask`): each later
  convolution then sees exactly the zero padding it sees at the probe's own size, so the cropped
  ``scale*h x scale*w`` output equals SR at that size (checked once per pipeline on a small
  image; SR networks for which it does not hold, such as window attention, fall back to batches
  of one exact size).  On the benchmark's 200 probes of 47 sizes that is 17 SR calls instead of
  68, and (b) about 5% faster in CPU time (the zeroing costs about 13% of an SR call, the padding
  25% more pixels); for a large SR network (the paper's Meta-RDN) the padded pixels cost more than
  the saved calls, so by default only small SR networks get canvases (``SMALL_SR_CONV_WEIGHTS``);
- the predictor and the re-ID network see full batches of ``batch_size`` images, each resize
  done once per group of same-sized images;
- ``torch.inference_mode`` everywhere, channels_last weights and inputs;
- bf16 autocast on CPUs with AVX512-BF16/AMX and fp16 autocast on CUDA, as decided by
  :class:`lrreid.utils.device.Precision`; the SR network may get its own precision
  (``sr_precision``) because its pixels feed everything after it.

``Precision.for_inference(fast=False)`` with ``batch_size=1`` is the plain fp32 reference path.

Features come back as float32 CPU tensors, L2-normalised when ``normalize_features=True``
(default False: the evaluation compares raw features by Euclidean distance, PRI Sec. 3.5).
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lrreid.data.imageio import image_to_tensor
from lrreid.errors import ConfigError, ImageReadError
from lrreid.models.net_input import net_input, normalize_pixels, resize_for_net
from lrreid.utils.device import Precision

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def to_image_tensor(image: ImageLike) -> torch.Tensor:
    """Turn one image into a float32 ``[3, H, W]`` CPU tensor with values in [0, 1].

    Accepts a path (read with :func:`lrreid.data.imageio.read_image`), a PIL image, a numpy array
    ``HxWx3`` (uint8 0..255, or float 0..1; ``HxW`` grey and ``HxWx4`` RGBA are converted) or a
    tensor ``[3, H, W]`` (uint8, or float 0..1).

    >>> to_image_tensor(np.zeros((64, 32, 3), np.uint8)).shape
    torch.Size([3, 64, 32])
    """
    if isinstance(image, (str, os.PathLike)):
        from lrreid.data.imageio import read_image

        image = read_image(image)
    if isinstance(image, Image.Image):
        return image_to_tensor(image)
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 1:
            raise ImageReadError(f"numpy array of shape {arr.shape}: expected an HxWx3 RGB image")
        arr = arr[:, :, :3]
        if arr.dtype == np.uint8:
            return image_to_tensor(arr)
        if np.issubdtype(arr.dtype, np.floating):
            return torch.from_numpy(np.array(arr, dtype=np.float32)).permute(2, 0, 1).clamp(0, 1)
        raise ImageReadError(f"numpy array of dtype {arr.dtype}: expected uint8 (0..255) or float (0..1)")
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.dim() != 3 or t.shape[0] != 3 or min(t.shape[1:]) < 1:
            raise ImageReadError(f"tensor of shape {tuple(t.shape)}: expected a [3, H, W] RGB image")
        if t.dtype == torch.uint8:
            return t.float().div_(255.0)
        return t.float().clamp(0, 1)
    raise ImageReadError(
        f"{type(image).__name__}: not an image (expected a path, PIL image, HxWx3 array or [3,H,W] tensor)"
    )


# Probes with a shorter side are too small to super-resolve (PRI's inference.min_probe_side default).
MIN_PROBE_SIDE = 4


def probe_side_limit(configured: int = MIN_PROBE_SIDE, sr_net: torch.nn.Module | None = None) -> int:
    """The shortest probe side that is super-resolved: ``configured`` or the SR network's own
    ``min_input_size``, whichever is larger (the rule of ``lrreid evaluate`` and of search)."""
    return max(int(configured), int(getattr(sr_net, "min_input_size", 1) or 1))


def probe_too_small(height: int, width: int, limit: int) -> str | None:
    """Why a ``height x width`` probe cannot be super-resolved under ``limit``, or None if it can."""
    if min(height, width) < limit:
        return (f"{width}x{height} px, below the minimum side of {limit} px "
                "(inference.min_probe_side / the SR network's limit)")
    return None


def probe_name(image: ImageLike, i: int) -> str:
    """How errors and results name a probe: its path, or ``<image i>`` for one in memory."""
    return str(image) if isinstance(image, (str, os.PathLike)) else f"<image {i}>"


def _as_image_list(images: ImageLike | Iterable[ImageLike]) -> list[ImageLike]:
    if isinstance(images, (str, os.PathLike, Image.Image)) or (
        isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 3
    ):
        return [images]
    return list(images)


def load_images(images: ImageLike | Iterable[ImageLike]) -> list[torch.Tensor]:
    """:func:`to_image_tensor` over a list (a single image is a list of one)."""
    return [to_image_tensor(im) for im in _as_image_list(images)]


# Resize ``[B, 3, h, w]`` to ``size`` (H, W): bilinear, antialiased when shrinking (the one resize of
# lrreid.models.net_input, as PRI's training and evaluation feed their networks).
resize_batch = resize_for_net


def resize_gallery(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize HR gallery images ``[B, 3, h, w]`` in [0, 1] exactly as the evaluation loads them.

    ``lrreid evaluate`` reads a gallery image with ``methods.pri.data.load_image(path, size)``: PIL's
    antialiased bicubic on the uint8 image.  torch's bicubic uses another kernel (a = -0.75 against
    PIL's -0.5) and skips the uint8 rounding; on CAVIAR4REID's 25-image galleries that alone moved
    Rank-1 of search against evaluation by 1.2 points.  So the same PIL path is used here (a few
    milliseconds per image, once per gallery image).
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    from lrreid.data.degradations import bicubic_resize
    from lrreid.data.imageio import tensor_to_pil

    return torch.stack([to_image_tensor(bicubic_resize(tensor_to_pil(img), size)) for img in x]).to(x.device)


def fold_conv_batchnorm(module: torch.nn.Module, precision: Precision) -> torch.nn.Module:
    """An inference copy of ``module`` with every Conv -> BatchNorm pair folded into one conv.

    Eval-mode BatchNorm is an affine map, so folding it into the conv's weights gives the same
    output with one memory pass less per layer (10-20% faster for a ResNet-18 in bf16 here).
    Modules torch.fx cannot trace, or whose folded copy does not reproduce the output, are
    returned unchanged.
    """
    import copy

    from torch.fx.experimental.optimization import fuse

    try:
        folded = precision.prepare_model(fuse(copy.deepcopy(module).float().cpu().eval()))
        x = torch.rand(2, 3, 64, 32, generator=torch.Generator().manual_seed(0)).to(precision.device)
        with torch.inference_mode():
            a, b = module.float()(x), folded(x)
            a, b = (a[0], b[0]) if isinstance(a, (tuple, list)) else (a, b)
            ok = torch.allclose(a, b, rtol=1e-3, atol=1e-3 * float(a.abs().max().clamp_min(1)))
    except Exception as exc:  # noqa: BLE001 - an untraceable module simply runs as it is
        from lrreid.utils.logging import get_logger

        get_logger("inference").debug("not folding BatchNorm of %s: %s", type(module).__name__, exc)
        return module
    return folded if ok else module


class ProbeFeatures(NamedTuple):
    """What :meth:`LRReIDPipeline.embed_probes` returns (unpacks as a tuple)."""

    features: torch.Tensor  # [N, D] float32
    scales: list[int]  # the scale each probe was super-resolved at
    sr_images: list[torch.Tensor] | None  # [3, s*h, s*w] in [0, 1], when asked for


# Canvas SR pads about 25% more pixels and saves SR calls.  Measured (benchmarks/inference.py, 1
# thread): lrreid demo's Meta-RDN (20k conv weights) 3-6% faster (b) with canvases; the paper's
# Meta-RDN (22M) 15% slower (compute-bound, per-call costs negligible).  Sizes in between are not
# measured; 1M sits between the two.
SMALL_SR_CONV_WEIGHTS = 1_000_000


def conv_weights(module: torch.nn.Module) -> int:
    """Weights of all ``Conv2d`` layers of ``module``: its multiply-adds per input-resolution pixel."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Conv2d))


def _pad_to(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[3, h0, w0]`` -> ``[3, h, w]``, zeros on the right and bottom (nothing to do if equal)."""
    if t.shape[1] == h and t.shape[2] == w:
        return t
    return F.pad(t, (0, w - t.shape[2], 0, h - t.shape[1]))


class CanvasMask:
    """Run an SR network on images of different sizes, zero-padded to one canvas, exactly.

    A copy of the network gets a forward hook on every ``Conv2d`` that zeroes its output outside
    each image's own region (scaled to the output's resolution).  In a network whose other layers
    are pointwise with f(0) = 0 (ReLU, sums, concatenation) every convolution then reads zeros
    beyond an image's border, exactly the zero padding it reads when the image is run at its own
    size, so each image's part of the canvas output equals its own SR output.
    :meth:`for_network` checks that on a small image and returns ``None`` where it does not hold.

    Example::

        canvas = CanvasMask.for_network(sr_net, scales=[2, 3, 4])
        with torch.inference_mode(), canvas.regions((48, 24), [(41, 20), (48, 24)]):
            out = canvas.net(padded_batch, 2)      # out[0, :, :82, :40] == sr_net(image_0, 2)
    """

    def __init__(self, net: torch.nn.Module):
        import copy

        self.net = copy.deepcopy(net)
        self._canvas_hw: tuple[int, int] | None = None
        self._sizes: list[tuple[int, int]] = []
        self._masks: dict[tuple, tuple] = {}  # per output resolution: indices of padded pixels
        self.num_convs = 0
        for module in self.net.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.register_forward_hook(self._mask_output)
                self.num_convs += 1

    @classmethod
    def for_network(cls, net: torch.nn.Module, scales: Sequence[int]) -> "CanvasMask | None":
        """A mask for ``net`` if canvas outputs equal own-size outputs at every scale, else None."""
        canvas = cls(net)
        if canvas.num_convs == 0:
            return None
        gen = torch.Generator().manual_seed(0)
        images = [torch.rand(3, 13, 7, generator=gen), torch.rand(3, 9, 11, generator=gen)]
        try:
            device = next(net.parameters()).device
            lr = torch.stack([_pad_to(t, 16, 16) for t in images]).to(device)
            with torch.inference_mode():
                for s in scales:
                    with canvas.regions((16, 16), [tuple(t.shape[1:]) for t in images]):
                        out = canvas.net(lr, s).float().cpu()
                    for j, t in enumerate(images):
                        own = net(t[None].to(device), s).float().cpu()[0]
                        crop = out[j, :, : own.shape[1], : own.shape[2]]
                        if crop.shape != own.shape or not torch.allclose(crop, own, atol=1e-4, rtol=1e-4):
                            return None
        except Exception as exc:  # noqa: BLE001 - any network the check cannot run: exact sizes
            from lrreid.utils.logging import get_logger

            get_logger("inference").debug("no canvas SR for %s: %s", type(net).__name__, exc)
            return None
        return canvas

    def regions(self, canvas_hw: Sequence[int], sizes: Sequence[tuple[int, int]]):
        """Context: the next forward passes of :attr:`net` mask to these (h, w) on this canvas."""
        import contextlib

        @contextlib.contextmanager
        def active():
            self._canvas_hw, self._sizes, self._masks = tuple(canvas_hw), list(sizes), {}
            try:
                yield self
            finally:
                self._canvas_hw, self._sizes, self._masks = None, [], {}

        return active()

    def _mask_output(self, module, inputs, out):
        if self._canvas_hw is None:
            return None
        B, C, H, W = out.shape
        key = (H, W, out.device)
        if key not in self._masks:
            Hc, Wc = self._canvas_hw
            outside = torch.ones(B, H, W, dtype=torch.bool)
            for j, (h, w) in enumerate(self._sizes):
                outside[j, : -(-h * H // Hc), : -(-w * W // Wc)] = False
            self._masks[key] = (outside.flatten().nonzero().squeeze(1).to(out.device),
                                tuple(t.to(out.device) for t in outside.nonzero(as_tuple=True)))
        flat, (b, y, x) = self._masks[key]
        # Zero only the padded pixels, in place (a multiply by a 0/1 mask costs as much as the
        # small SR convolutions themselves); channels_last: one row of C values per pixel.
        if out.is_contiguous(memory_format=torch.channels_last):
            out.permute(0, 2, 3, 1).view(B * H * W, C).index_fill_(0, flat, 0)
        else:
            out[b, :, y, x] = 0
        return None


def _resize_each(images: Sequence[torch.Tensor], idxs: Iterable[int], size: tuple[int, int]) -> torch.Tensor:
    """``images[i]`` ``[3, h_i, w_i]`` for i in ``idxs``, resized to ``size`` and stacked:
    one :func:`resize_batch` call per run of same-sized images (sort them by size first)."""
    idxs = list(idxs)
    out, run = [], []
    for i in idxs:
        if run and images[i].shape != images[run[0]].shape:
            out.append(resize_batch(torch.stack([images[k] for k in run]), size))
            run = []
        run.append(i)
    if run:
        out.append(resize_batch(torch.stack([images[k] for k in run]), size))
    return torch.cat(out) if len(out) > 1 else out[0]


def _chunks(seq: Sequence, n: int):
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


# --------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------
@dataclass
class _Settings:
    """Everything besides the weights that decides the features (part of the model identity)."""

    scales: tuple[int, ...]
    fixed_scale: int | None
    input_size: tuple[int, int]
    predictor_input_size: tuple[int, int]
    lr_size: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    normalize_features: bool


class LRReIDPipeline:
    """Predict a scale, super-resolve, embed: LR probes and HR gallery images -> features.

    Args:
        reid_net: module mapping normalised ``[B, 3, H, W]`` images to ``[B, D]`` features (eval mode).
        sr_net: module with ``forward(x, scale)`` on ``[B, 3, h, w]`` images in [0, 1]; ``None``
            means no SR (probes are only resized, scale 1).
        predictor: module mapping normalised ``[B, 3, Hp, Wp]`` LR images to ``[B, len(scales)]``
            scale logits; ``None`` needs ``fixed_scale`` (or no ``sr_net``).
        scales: the scale factor of each predictor class.
        fixed_scale: use this scale for every probe instead of the predictor.
        input_size: (H, W) the re-ID network sees.
        precision: device and autocast for the re-ID network and predictor (default: the fast path,
            ``Precision.for_inference()``); ``Precision.for_inference(fast=False)`` for plain fp32.
        sr_precision: the SR network's own precision (default: ``precision``).
        predictor_input_size: (H, W) the predictor sees (default ``input_size``).
        lr_size: resize probes to this (h, w) before SR, as in training on fixed-size LR crops;
            ``None`` keeps each probe's own size (probes are then batched by size as well).
        mean, std: per-channel normalisation applied before the re-ID network and the predictor.
        normalize_features: L2-normalise the returned features.
        batch_size: images per network call.
        fold_batchnorm: run copies of the re-ID network and predictor with each BatchNorm folded
            into the convolution before it (default: on the fast path, off in plain fp32).
        sr_size_multiple: probes of one scale whose height and width round up to the same
            multiple of this share one masked SR call on a canvas (outputs cropped back; the same
            output as SR at each probe's own size); 1 batches by exact size only (default: 8 on
            the fast path for small SR networks (at most ``SMALL_SR_CONV_WEIGHTS`` convolution
            weights, i.e. multiply-adds per LR pixel), else 1; always 1 where the masked canvas
            is not exact for the SR network).
        video: ``reid_net`` also takes tracklets ``[B, T, 3, H, W]`` and pools their frames into
            one feature (S3-CLIP): :meth:`embed_tracklets` embeds a probe of several frames.
        min_probe_side: probes with a shorter side are refused (``ImageReadError``, reason
            ``too_small``), as ``lrreid evaluate`` refuses them (``inference.min_probe_side``); the
            SR network's ``min_input_size`` raises it.

    A probe larger than ``input_size`` in either side is first reduced (aspect kept) to fit it:
    its SR output is resized to ``input_size`` anyway, and SR at the full size of a photo costs
    gigabytes for nothing.

    Example:
        >>> pipe = LRReIDPipeline(reid_net, sr_net, predictor, scales=(1, 2, 3, 4))
        >>> gallery = pipe.embed_gallery(["g/0001.jpg", "g/0002.jpg"])      # [2, D]
        >>> feats, scales, _ = pipe.embed_probes(["p/0001_lr.jpg"])          # scale chosen per probe
    """

    def __init__(
        self,
        reid_net: torch.nn.Module,
        sr_net: torch.nn.Module | None = None,
        predictor: torch.nn.Module | None = None,
        scales: Sequence[int] = (1, 2, 3, 4),
        fixed_scale: int | None = None,
        input_size: tuple[int, int] = (384, 128),
        precision: Precision | None = None,
        *,
        sr_precision: Precision | None = None,
        predictor_input_size: tuple[int, int] | None = None,
        lr_size: tuple[int, int] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        normalize_features: bool = False,
        batch_size: int = 32,
        fold_batchnorm: bool | None = None,
        sr_size_multiple: int | None = None,
        min_probe_side: int = MIN_PROBE_SIDE,
        video: bool = False,
    ):
        scales = tuple(int(s) for s in scales)
        if fixed_scale is not None and int(fixed_scale) != fixed_scale:
            raise ConfigError(f"fixed_scale={fixed_scale!r}: expected an integer scale factor")
        if sr_net is None:
            fixed_scale = 1 if fixed_scale is None else fixed_scale
        if predictor is None and fixed_scale is None:
            raise ConfigError("no scale predictor: give fixed_scale (one of the SR network's scales)")
        self._check_scale_supported(sr_net, fixed_scale)
        self.precision = precision or Precision.for_inference()
        self.sr_precision = sr_precision or self.precision
        self.settings = _Settings(
            scales=scales,
            fixed_scale=None if fixed_scale is None else int(fixed_scale),
            input_size=tuple(int(v) for v in input_size),
            predictor_input_size=tuple(int(v) for v in (predictor_input_size or input_size)),
            lr_size=None if lr_size is None else tuple(int(v) for v in lr_size),
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            normalize_features=bool(normalize_features),
        )
        self.batch_size = max(1, int(batch_size))
        self.min_probe_side = probe_side_limit(min_probe_side, sr_net)
        if sr_size_multiple is not None and int(sr_size_multiple) < 1:
            raise ConfigError(f"sr_size_multiple={sr_size_multiple!r}: expected an integer >= 1 (1: exact sizes)")
        if sr_size_multiple is None:  # canvases pay off where per-call costs outweigh padded pixels
            small_sr = sr_net is not None and conv_weights(sr_net) <= SMALL_SR_CONV_WEIGHTS
            sr_size_multiple = 8 if self.precision.mode != "fp32" and small_sr else 1
        self.sr_size_multiple = int(sr_size_multiple)
        self.reid_net = self.precision.prepare_model(reid_net.eval())
        self.predictor = None if predictor is None else self.precision.prepare_model(predictor.eval())
        # What runs: on the fast path, copies with BatchNorm folded into the convolutions before it.
        # The modules above stay as given (the model identity and the ONNX export read them).
        fold = self.precision.mode != "fp32" if fold_batchnorm is None else fold_batchnorm
        self._reid_run = fold_conv_batchnorm(self.reid_net, self.precision) if fold else self.reid_net
        self._predictor_run = (fold_conv_batchnorm(self.predictor, self.precision)
                               if fold and self.predictor is not None else self.predictor)
        self.sr_net = None if sr_net is None else self.sr_precision.prepare_model(sr_net.eval())
        # Canvas SR runs a hooked copy (the given module stays hook-free for export and identity).
        self._canvas: CanvasMask | None = None
        if self.sr_net is not None and self.sr_size_multiple > 1:
            self._canvas = CanvasMask.for_network(self.sr_net, [s for s in scales if self._sr_supports(self.sr_net, s)])
            if self._canvas is None:
                self.sr_size_multiple = 1
        self._mean = torch.tensor(self.settings.mean).view(1, 3, 1, 1)
        self._std = torch.tensor(self.settings.std).view(1, 3, 1, 1)
        self.source: dict = {}  # where the weights came from (a run folder), set by load_pipeline
        self.video = bool(video)  # reid_net also pools tracklets [B, T, 3, H, W] (embed_tracklets)

    # ---- small helpers ----------------------------------------------------------------------
    @staticmethod
    def _sr_supports(sr_net, scale) -> bool:
        supported = getattr(sr_net, "supported_scales", None)
        return supported is None or any(abs(float(scale) - float(s)) < 1e-9 for s in supported)

    @classmethod
    def _check_scale_supported(cls, sr_net, scale) -> None:
        """Scale 1 is always possible (the identity, for SR networks without a x1 mode)."""
        if sr_net is not None and scale is not None and int(scale) != 1 and not cls._sr_supports(sr_net, scale):
            shown = ", ".join(f"x{float(s):g}" for s in sr_net.supported_scales)
            raise ConfigError(f"scale {scale}: the SR network does {shown} only")

    @property
    def scales(self) -> tuple[int, ...]:
        return self.settings.scales

    @property
    def input_size(self) -> tuple[int, int]:
        return self.settings.input_size

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images already at the network's size -> its input normalisation."""
        return normalize_pixels(x, self._mean, self._std)

    def _run(self, module: torch.nn.Module, precision: Precision, *args) -> torch.Tensor:
        """One network call; callers hold ``torch.inference_mode`` (outputs are inference tensors)."""
        x = precision.prepare_input(args[0])
        with precision.autocast():
            out = module(x, *args[1:])
        if isinstance(out, (tuple, list)):  # a module that also returns logits: features come first
            out = out[0]
        return out.float()

    def _embed_batch(self, x: torch.Tensor) -> torch.Tensor:
        feats = self._run(self._reid_run, self.precision, net_input(x, self.input_size, self._mean, self._std))
        if self.settings.normalize_features:
            feats = F.normalize(feats, dim=1)
        return feats.cpu()

    # ---- public API ------------------------------------------------------------------------
    def embed_gallery(
        self,
        images: Iterable[ImageLike],
        on_progress: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Embed HR gallery images (resized to ``input_size``): ``[N, D]`` float32.

        Images are read lazily, one batch at a time; ``on_progress(n)`` is called after each batch.
        """
        images = [images] if isinstance(images, (str, os.PathLike, Image.Image)) else list(images)
        with torch.inference_mode():
            feats = self._embed_gallery(images, on_progress)
        return feats.clone()  # a normal tensor: inference tensors refuse in-place ops outside inference mode

    def _embed_gallery(self, images, on_progress) -> torch.Tensor:
        out = []
        for chunk in _chunks(images, self.batch_size):
            batch = torch.stack([resize_gallery(t[None], self.input_size)[0] for t in load_images(chunk)])
            out.append(self._embed_batch(batch))
            if on_progress is not None:
                on_progress(len(chunk))
        if not out:
            return torch.empty(0, self.feature_dim())
        return torch.cat(out)

    def predict_scales(self, images: Iterable[ImageLike]) -> tuple[list[int], torch.Tensor]:
        """The predictor's choice per LR image: (scales, probabilities ``[N, len(scales)]``)."""
        tensors = load_images(images)
        if self.predictor is None:
            raise ConfigError("this pipeline has no scale predictor (it was built with a fixed scale)")
        with torch.inference_mode():
            scales, probs = self._predict_scales(tensors)
        return scales, probs.clone()

    def _predict_scales(self, tensors: list[torch.Tensor]) -> tuple[list[int], torch.Tensor]:
        # Probes in order of size, so that each batch resizes its same-sized images in one call.
        order = sorted(range(len(tensors)), key=lambda i: tuple(tensors[i].shape[1:]))
        probs = torch.empty(len(tensors), len(self.scales))
        for chunk in _chunks(order, self.batch_size):
            x = _resize_each(tensors, chunk, self.settings.predictor_input_size)
            logits = self._run(self._predictor_run, self.precision, self.normalize(x))
            probs[chunk] = logits.softmax(dim=1).cpu()
        return [self.scales[i] for i in probs.argmax(dim=1).tolist()], probs

    def super_resolve(self, images: torch.Tensor, scale: int) -> torch.Tensor:
        """SR of a batch ``[B, 3, h, w]`` (values 0..1) at one scale, clamped to [0, 1]."""
        with torch.inference_mode():
            out = self._super_resolve(images, scale)
        return out.clone()

    def _super_resolve(self, images: torch.Tensor, scale: int,
                       sizes: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
        """SR of a batch; ``sizes``: each image's own (h, w) on a zero-padded canvas (masked SR)."""
        if self.sr_net is None or (int(scale) == 1 and not self._sr_supports(self.sr_net, 1)):
            return images
        if sizes is None or all(tuple(hw) == tuple(images.shape[-2:]) for hw in sizes):
            return self._run(self.sr_net, self.sr_precision, images, int(scale)).clamp_(0, 1).cpu()
        with self._canvas.regions(images.shape[-2:], sizes):
            return self._run(self._canvas.net, self.sr_precision, images, int(scale)).clamp_(0, 1).cpu()

    def check_probe_size(self, image: torch.Tensor, name: str = "<image>") -> torch.Tensor:
        """``image`` if it is at least ``min_probe_side`` on each side, else ImageReadError (``too_small``)."""
        problem = probe_too_small(*image.shape[-2:], self.min_probe_side)
        if problem is not None:
            raise ImageReadError(f"{name}: probe is {problem}", reason="too_small", path=name)
        return image

    def prepare_probe(self, image: torch.Tensor, name: str = "<image>") -> torch.Tensor:
        """A ``[3, h, w]`` probe as SR will see it: refused if smaller than ``min_probe_side``
        (ImageReadError, reason ``too_small``), reduced (aspect kept) if larger than ``input_size``."""
        image = self.check_probe_size(image, name)
        h, w = image.shape[-2:]
        max_h, max_w = self.input_size
        if h <= max_h and w <= max_w:
            return image
        ratio = min(max_h / h, max_w / w)
        size = (max(1, round(h * ratio)), max(1, round(w * ratio)))
        return resize_batch(image[None], size)[0]

    def embed_probes(
        self,
        images: Iterable[ImageLike],
        scale: int | str | None = None,
        return_sr: bool = False,
    ) -> ProbeFeatures:
        """Predict a scale per LR probe, super-resolve, embed.

        ``scale``: ``None`` uses the pipeline's setting (``fixed_scale`` if given, else the
        predictor); ``"auto"`` the predictor; an integer forces that scale for every probe.
        Probes are grouped by (scale, size) so each SR call is a single batched call at one scale;
        the result is in input order.  Each probe goes through :meth:`prepare_probe` first.
        """
        images = _as_image_list(images)
        if self.sr_net is None and self.predictor is None:
            # no SR (a bare re-ID network): a probe is embedded exactly as a gallery image is
            tensors = [self.check_probe_size(to_image_tensor(im), probe_name(im, i)) for i, im in enumerate(images)]
            self._choose_scales(tensors, scale)  # still refuses a scale this model cannot do
            with torch.inference_mode():
                features = self._embed_gallery(tensors, None)
            return ProbeFeatures(features.clone(), [1] * len(tensors), [t.clone() for t in tensors] if return_sr else None)
        tensors = [self.prepare_probe(to_image_tensor(im), probe_name(im, i)) for i, im in enumerate(images)]
        with torch.inference_mode():
            features, chosen, sr_out = self._embed_probes(tensors, scale, return_sr)
        sr_out = None if sr_out is None else [t.clone() for t in sr_out]
        return ProbeFeatures(features.clone(), chosen, sr_out)

    def _embed_probes(self, tensors, scale, return_sr):
        if self.settings.lr_size is not None:
            tensors = [resize_batch(t[None], self.settings.lr_size)[0] for t in tensors]
        chosen = self._choose_scales(tensors, scale)

        # One SR canvas per (scale, size rounded up to sr_size_multiple); multiple 1: exact sizes.
        m = self.sr_size_multiple
        groups: dict[tuple[int, int, int], list[int]] = defaultdict(list)
        for i, (t, s) in enumerate(zip(tensors, chosen)):
            groups[(s, -(-t.shape[1] // m) * m, -(-t.shape[2] // m) * m)].append(i)

        feats: torch.Tensor | None = None  # [N, D], allocated when D is known
        sr_out: list[torch.Tensor | None] = [None] * len(tensors) if return_sr else None
        pending_idx: list[int] = []  # SR outputs, resized to input_size, waiting for a full batch
        pending: list[torch.Tensor] = []

        def embed_pending(final: bool) -> None:
            nonlocal feats
            while pending_idx and (final or len(pending_idx) >= self.batch_size):
                x = torch.cat(pending) if len(pending) > 1 else pending[0]
                n = min(self.batch_size, len(pending_idx))
                f = self._embed_batch(x[:n])
                if feats is None:
                    feats = torch.empty(len(tensors), f.shape[1])
                feats[pending_idx[:n]] = f
                del pending_idx[:n]
                pending[:] = [x[n:]] if pending_idx else []

        for (s, canvas_h, canvas_w), idxs in groups.items():
            idxs.sort(key=lambda i: tuple(tensors[i].shape[1:]))  # same-sized crops resize together
            for chunk in _chunks(idxs, self.batch_size):
                sizes = [tuple(tensors[i].shape[1:]) for i in chunk]
                lr = torch.stack([_pad_to(tensors[i], canvas_h, canvas_w) for i in chunk])
                sr = self._super_resolve(lr, s, sizes if m > 1 else None)
                # each probe's own part of the output: scale * its size (Meta-SR, CARN, SwinIR and
                # bicubic all map LR pixel (y, x) to the output block starting at (s*y, s*x))
                crops = [sr[j, :, : s * tensors[i].shape[1], : s * tensors[i].shape[2]] for j, i in enumerate(chunk)]
                if return_sr:
                    for crop, i in zip(crops, chunk):
                        sr_out[i] = crop.clone()
                pending.append(_resize_each(crops, range(len(crops)), self.input_size))
                pending_idx.extend(chunk)
                embed_pending(final=False)
        embed_pending(final=True)
        if feats is None:
            feats = torch.empty(0, self.feature_dim())
        return feats, chosen, sr_out

    def embed_tracklets(self, tracklets: Iterable[Sequence[ImageLike]], scale: int | str | None = None) -> ProbeFeatures:
        """One feature per tracklet (the frames of one person, e.g. a folder): each frame prepared
        and super-resolved as a probe is, at one scale per tracklet, then the frames pooled by the
        re-ID network (a video model's, ``video=True``).  ``sr_images`` is None."""
        if not self.video:
            raise ConfigError("this model embeds single images; a tracklet (several frames as one probe) needs a "
                              "video model such as S3-CLIP")
        feats, chosen = [], []
        with torch.inference_mode():
            for frames in tracklets:
                frames = list(frames)
                if not frames:
                    raise ImageReadError("a tracklet with no frames", reason="empty")
                tensors = [self.prepare_probe(to_image_tensor(f), probe_name(f, i)) for i, f in enumerate(frames)]
                if self.settings.lr_size is not None:
                    tensors = [resize_batch(t[None], self.settings.lr_size)[0] for t in tensors]
                s = self._choose_tracklet_scale(tensors, scale)
                x = torch.cat([net_input(self._super_resolve(t[None], s), self.input_size, self._mean, self._std)
                               for t in tensors])
                f = self._run(self.reid_net, self.precision, x[None])
                feats.append(F.normalize(f, dim=1) if self.settings.normalize_features else f)
                chosen.append(s)
        out = torch.cat(feats).cpu() if feats else torch.empty(0, self.feature_dim())
        return ProbeFeatures(out.clone(), chosen, None)

    def _choose_tracklet_scale(self, frames: list[torch.Tensor], scale: int | str | None) -> int:
        """One scale for all frames of a tracklet: the predictor's mean probability over them."""
        if (scale is None and self.settings.fixed_scale is None or scale == "auto") and self.predictor is not None:
            probs = self._predict_scales(frames)[1].mean(0)
            return self.scales[int(probs.argmax())]
        return self._choose_scales(frames[:1], scale)[0]

    def _choose_scales(self, tensors: list[torch.Tensor], scale: int | str | None) -> list[int]:
        if scale is None:
            scale = "auto" if self.settings.fixed_scale is None else self.settings.fixed_scale
        if scale == "auto" and self.predictor is None and self.sr_net is None:
            scale = 1  # a bare re-ID network: the only choice is no SR
        if scale == "auto":
            if self.predictor is None:
                raise ConfigError("scale 'auto' needs a scale predictor; this model has none (give a scale)")
            return self._predict_scales(tensors)[0] if tensors else []
        try:
            s = int(scale)
        except (TypeError, ValueError):
            raise ConfigError(f"scale {scale!r}: expected 'auto' or an integer scale factor") from None
        if s not in self.settings.scales:  # x5 from a model trained on x1-x4 would be an untrained guess
            allowed = ", ".join(str(x) for x in self.settings.scales)
            raise ConfigError(f"scale {scale}: this model's scales are {allowed} (or auto)")
        if self.sr_net is not None:
            self._check_scale_supported(self.sr_net, s)
        return [s] * len(tensors)

    def feature_dim(self) -> int:
        """Length of a feature vector (found with one tiny forward pass the first time)."""
        if not hasattr(self, "_feature_dim"):
            x = torch.zeros(1, 3, *self.input_size)
            with torch.inference_mode():
                self._feature_dim = int(self._run(self.reid_net, self.precision, self.normalize(x)).shape[1])
        return self._feature_dim

    def modules(self) -> dict[str, torch.nn.Module]:
        """The networks by role (absent ones left out)."""
        out = {"reid_net": self.reid_net, "sr_net": self.sr_net, "predictor": self.predictor}
        return {k: v for k, v in out.items() if v is not None}
