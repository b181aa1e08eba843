"""LRReIDPipeline: batching by scale, the fast path, the accepted inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lrreid.errors import ConfigError, ImageReadError
from lrreid.inference.pipeline import LRReIDPipeline, resize_batch
from lrreid.inference.testing import tiny_networks
from lrreid.utils.device import Precision

INPUT = (64, 32)
FP32 = Precision(torch.device("cpu"), "fp32", False)
BF16 = Precision(torch.device("cpu"), "bf16", True)


class BrightnessPredictor(torch.nn.Module):
    """A predictor whose choice is easy to steer: darker images -> larger scales."""

    def forward(self, x):
        level = x.mean(dim=(1, 2, 3))[:, None]  # normalised brightness, about -2 .. 2
        centres = torch.tensor([1.5, 0.5, -0.5, -1.5])[None]
        return -(level - centres) ** 2


@pytest.fixture(scope="module")
def nets():
    reid, sr, _ = tiny_networks(seed=0, backbone="resnet18", sr="bicubic")
    return reid, sr, BrightnessPredictor()


def probes(n=12, seed=0):
    """LR probes of three sizes and four brightness levels, so batches split by scale and by size."""
    rng = np.random.default_rng(seed)
    sizes = [(16, 8), (20, 10), (16, 8), (24, 12)]
    out = []
    for i in range(n):
        level = (i * 7) % 4 * 60  # 0, 60, 120, 180 in a scrambled order
        out.append(rng.integers(level, level + 75, size=(*sizes[i % 4], 3), dtype=np.uint8))
    return out


def pipe(nets, precision=FP32, batch_size=8, **kw):
    reid, sr, pred = nets
    return LRReIDPipeline(reid, sr, pred, scales=(1, 2, 3, 4), input_size=INPUT, precision=precision,
                          batch_size=batch_size, **kw)


def test_batched_by_scale_equals_one_at_a_time_and_the_unbatched_reference(nets):
    images = probes()
    batched = pipe(nets, batch_size=8).embed_probes(images)
    single = pipe(nets, batch_size=1).embed_probes(images)
    assert set(batched.scales) == {1, 2, 3, 4}
    assert batched.scales == single.scales
    torch.testing.assert_close(batched.features, single.features, atol=1e-4, rtol=1e-4)

    # Reference written out by hand: predictor on the resized LR, SR at that scale, resize, embed.
    reid, sr, pred = nets
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        for i, im in enumerate(images):
            x = torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255
            logits = pred((resize_batch(x, INPUT) - mean) / std)
            scale = (1, 2, 3, 4)[int(logits.argmax())]
            assert scale == batched.scales[i]
            y = sr(x, scale).clamp(0, 1)
            f = reid((resize_batch(y, INPUT) - mean) / std)
            torch.testing.assert_close(batched.features[i], f[0], atol=1e-4, rtol=1e-4)


def test_fast_bf16_path_is_close_to_fp32(nets):
    images = probes(8, seed=1)
    ref = pipe(nets, FP32).embed_probes(images, scale=2).features
    fast = pipe(nets, BF16).embed_probes(images, scale=2).features
    assert fast.dtype == torch.float32
    assert F.cosine_similarity(ref, fast).min() > 0.99
    g_ref = pipe(nets, FP32).embed_gallery(images)
    g_fast = pipe(nets, BF16).embed_gallery(images)
    assert F.cosine_similarity(g_ref, g_fast).min() > 0.99


@pytest.mark.parametrize("batch", [1, 4])
def test_bf16_autocast_computes_one_pixel_wide_strided_convolutions_correctly(batch):
    # oneDNN's AMX bf16 convolution (torch 2.14) gets a conv with a 1-pixel-wide, taller output
    # wrong on every call (garbage or NaN read from scratch memory): ResNet layer4's first conv on
    # this file's 64x32 inputs (4x2 -> 2x1), hence NaN features now and then on the fast path.
    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(256, 512, 3, stride=2, padding=1).eval().to(memory_format=torch.channels_last)
    for hw in ((4, 2), (8, 2), (8, 1)):
        x = torch.randn(batch, 256, *hw, generator=gen).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            ref = conv(x)
            for _ in range(3):
                with BF16.autocast():
                    out = conv(x)
                assert out.dtype == torch.bfloat16 and out.shape == ref.shape
                assert float((out.float() - ref).abs().max()) < 0.02 * float(ref.abs().max()), hw
    # every other convolution still runs in bf16, as autocast runs it
    x = torch.randn(batch, 256, 8, 4, generator=gen).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        with BF16.autocast():
            guarded = conv(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain = conv(x)
    assert torch.equal(guarded, plain)


def test_paths_pil_numpy_and_tensors_give_the_same_features(nets, tmp_path):
    images = probes(3, seed=2)
    paths = []
    for i, im in enumerate(images):
        p = tmp_path / f"p{i}.png"
        Image.fromarray(im).save(p)
        paths.append(p)
    p = pipe(nets)
    ref = p.embed_gallery(images)
    for variant in (paths, [str(x) for x in paths], [Image.fromarray(im) for im in images],
                    [torch.from_numpy(im).permute(2, 0, 1) for im in images]):
        torch.testing.assert_close(p.embed_gallery(variant), ref)
    # a single image is a batch of one
    torch.testing.assert_close(p.embed_gallery(paths[0]), ref[:1])


def test_fixed_scale_sr_outputs_and_normalised_features(nets):
    images = probes(4)
    out = pipe(nets, fixed_scale=3, normalize_features=True).embed_probes(images, return_sr=True)
    assert out.scales == [3, 3, 3, 3]
    for im, sr in zip(images, out.sr_images):
        assert tuple(sr.shape) == (3, im.shape[0] * 3, im.shape[1] * 3)
        assert 0.0 <= float(sr.min()) and float(sr.max()) <= 1.0
    torch.testing.assert_close(out.features.norm(dim=1), torch.ones(4))
    # an explicit scale overrides the pipeline's, "auto" goes back to the predictor
    assert pipe(nets).embed_probes(images, scale=4).scales == [4] * 4


def test_bad_inputs_raise_one_line_errors(nets, tmp_path):
    p = pipe(nets)
    with pytest.raises(ImageReadError, match="expected an HxWx3"):
        p.embed_gallery([np.zeros((5, 5, 7), np.uint8)])
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    with pytest.raises(ImageReadError, match="notes.jpg"):
        p.embed_probes([not_image])
    reid, sr, _ = nets
    with pytest.raises(ConfigError, match="fixed_scale"):
        LRReIDPipeline(reid, sr, None, precision=FP32)
    with pytest.raises(ConfigError, match="predictor"):
        LRReIDPipeline(reid, sr, None, fixed_scale=2, precision=FP32).embed_probes(probes(1), scale="auto")


# ---- SR canvases: probes of different sizes in one SR call, same output as SR at their own size ----
def metasr_nets(seed=0):
    reid, sr, _ = tiny_networks(seed=seed, backbone="resnet18", sr="metasr_rdn",
                                sr_kwargs={"G0": 8, "D": 2, "C": 2, "G": 8})
    return reid, sr, BrightnessPredictor()


def mixed_size_probes(n=10, seed=3):
    """Probes of many sizes and four brightness levels: canvases mix sizes, the predictor all scales."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level = (i * 7) % 4 * 60
        size = (int(rng.integers(9, 24)), int(rng.integers(5, 13)), 3)
        out.append(rng.integers(level, level + 75, size=size, dtype=np.uint8))
    return out


@pytest.mark.parametrize("precision", [FP32, BF16], ids=["fp32", "bf16"])
def test_sr_canvas_gives_the_outputs_of_sr_at_each_probes_own_size(precision):
    nets = metasr_nets()
    images = mixed_size_probes()
    canvas = pipe(nets, precision, batch_size=4, sr_size_multiple=8)
    exact = pipe(nets, precision, batch_size=4, sr_size_multiple=1)
    assert canvas.sr_size_multiple == 8  # the masked canvas passed its check for Meta-SR
    for scale in (3, "auto"):
        a = canvas.embed_probes(images, scale=scale, return_sr=True)
        b = exact.embed_probes(images, scale=scale, return_sr=True)
        assert a.scales == b.scales
        assert scale != "auto" or set(a.scales) == {1, 2, 3, 4}
        for im, s, sa, sb in zip(images, a.scales, a.sr_images, b.sr_images):
            assert tuple(sa.shape) == tuple(sb.shape) == (3, s * im.shape[0], s * im.shape[1])
            # the same canvas without the mask moves border pixels by up to 0.6 here
            assert float((sa - sb).abs().max()) < (1e-5 if precision is FP32 else 1e-2)
        assert float(F.cosine_similarity(a.features, b.features).min()) > 0.9999


def test_sr_canvas_keeps_rank1_and_map_on_the_synthetic_dataset(tmp_path):
    from lrreid.data.datasets import build_dataset
    from lrreid.evaluation.metrics import evaluate_features

    ds = build_dataset("synthetic", num_ids=12, images_per_camera=2, cache_dir=tmp_path)
    gallery = [r for r in ds.records if r.camid == 0]
    probes_ = [r for r in ds.records if r.camid == 1]
    nets = metasr_nets(seed=1)
    results = {}
    for m in (1, 8):
        p = pipe(nets, FP32, sr_size_multiple=m)
        q = p.embed_probes([r.path for r in probes_]).features
        g = p.embed_gallery([r.path for r in gallery])
        res = evaluate_features(q, g, [r.pid for r in probes_], [r.pid for r in gallery],
                                [r.camid for r in probes_], [r.camid for r in gallery], max_rank=5)
        results[m] = (q, 100 * res.rank(1), 100 * res.mAP)
    (q1, r1_exact, map_exact), (q8, r1_canvas, map_canvas) = results[1], results[8]
    assert float((q1 - q8).abs().max()) < 1e-4 * float(q1.abs().max())
    assert abs(r1_canvas - r1_exact) == 0.0 and abs(map_canvas - map_exact) < 1e-3


def test_sr_networks_the_canvas_cannot_reproduce_fall_back_to_exact_sizes():
    # Bicubic (antialiased: renormalised at the border) has no convolution to mask.
    reid, sr, pred = tiny_networks(seed=0, backbone="resnet18", sr="bicubic")
    p = pipe((reid, sr, pred), BF16, sr_size_multiple=8)
    assert p.sr_size_multiple == 1
    images = mixed_size_probes(6)
    ref = pipe((reid, sr, pred), FP32).embed_probes(images, scale=2)
    assert F.cosine_similarity(p.embed_probes(images, scale=2).features, ref.features).min() > 0.99
    with pytest.raises(ConfigError, match="sr_size_multiple"):
        pipe((reid, sr, pred), FP32, sr_size_multiple=0)


def test_canvas_hooks_stay_off_the_given_sr_network():
    reid, sr, pred = metasr_nets()
    pipe((reid, sr, pred), BF16, sr_size_multiple=8)
    assert not any(m._forward_hooks for m in sr.modules())  # export and identity read this module


def test_canvases_by_default_only_on_the_fast_path_and_for_small_sr_networks():
    reid, sr, pred = metasr_nets()
    assert pipe((reid, sr, pred), BF16).sr_size_multiple == 8
    assert pipe((reid, sr, pred), FP32).sr_size_multiple == 1  # the plain reference path

    class BigSR(torch.nn.Module):  # conv-heavy: padded pixels would cost more than saved calls
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Conv2d(384, 384, 3, padding=1)  # 1.3M multiply-adds per pixel

        def forward(self, x, scale):
            return F.interpolate(x, scale_factor=scale)

    assert pipe((reid, BigSR(), pred), BF16).sr_size_multiple == 1
