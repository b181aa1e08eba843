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
