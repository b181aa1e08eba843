"""Meta-SR RDN: the release's checkpoint layout loads strictly, every output pixel is its
predicted filter applied at its source LR pixel, any scale works and the network trains."""
import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from lrreid.errors import ConfigError
from lrreid.models.sr import build_sr_model
from lrreid.models.sr.rdn_metasr import MetaRDN, scale_fraction


def release_state_dict(G0=64, D=16, C=8, G=64) -> dict:
    """Keys and shapes of Meta-SR-Pytorch's model_1000.pt (MetaRDN, RDNconfig B), written out
    from the release's module definitions: EDSR MeanShift convs, SFENet1/2, RDBs, GFF, P2W."""
    sd = {}

    def conv(name, cout, cin, k):
        sd[f"{name}.weight"] = torch.empty(cout, cin, k, k)
        sd[f"{name}.bias"] = torch.empty(cout)

    for shift, sign in (("sub_mean", -1), ("add_mean", 1)):  # 1x1 conv: identity + sign*255*mean
        sd[f"{shift}.weight"] = torch.eye(3).view(3, 3, 1, 1)
        sd[f"{shift}.bias"] = sign * 255 * torch.tensor([0.4488, 0.4371, 0.4040])
    conv("SFENet1", G0, 3, 3)
    conv("SFENet2", G0, G0, 3)
    for i in range(D):
        for j in range(C):
            conv(f"RDBs.{i}.convs.{j}.conv.0", G, G0 + j * G, 3)
        conv(f"RDBs.{i}.LFF", G0, G0 + C * G, 1)
    conv("GFF.0", G0, D * G0, 1)
    conv("GFF.1", G0, G0, 3)
    sd["P2W.meta_block.0.weight"] = torch.empty(256, 3)
    sd["P2W.meta_block.0.bias"] = torch.empty(256)
    sd["P2W.meta_block.2.weight"] = torch.empty(3 * 3 * G0 * 3, 256)
    sd["P2W.meta_block.2.bias"] = torch.empty(3 * 3 * G0 * 3)
    return sd


def test_release_layout_loads_strictly_at_the_published_size(tmp_path):
    release = release_state_dict()
    torch.save(release, tmp_path / "model_1000.pt")
    net = build_sr_model("metasr_rdn", weights=tmp_path / "model_1000.pt")  # strict, importer metasr_release
    assert sum(p.numel() for p in net.parameters()) == sum(v.numel() for v in release.values()) == 22_419_096
    assert torch.equal(net.sub_mean.bias, release["sub_mean.bias"])


def tiny(seed=0) -> MetaRDN:
    torch.manual_seed(seed)
    return MetaRDN(G0=4, D=2, C=2, G=3).eval()


def per_pixel_reference(net: MetaRDN, x: torch.Tensor, scale: float) -> torch.Tensor:
    """Meta-SR's definition, one output pixel at a time: source pixel floor(i/s), offset i/s - floor(i/s)."""
    feats = net.features(x)
    B, C, h, w = feats.shape
    H, W = math.floor(h * scale + 0.5), math.floor(w * scale + 0.5)
    cols = F.unfold(feats, 3, padding=1).view(B, C * 9, h, w)  # channel-major, then kernel row/col
    s = Fraction(scale).limit_denominator(20)
    src = [(math.floor(i / s), float(i / s - math.floor(i / s))) for i in range(max(H, W))]
    pos = torch.tensor([[1 / scale, src[i][1], src[j][1]] for i in range(H) for j in range(W)])
    filters = net.P2W.meta_block(pos).view(H, W, C * 9, 3)
    out = torch.zeros(B, 3, H, W)
    for i in range(H):
        for j in range(W):
            out[:, :, i, j] = cols[:, :, src[i][0], src[j][0]] @ filters[i, j]
    return (net.add_mean(out) / 255).clamp(0, 1)


@pytest.mark.parametrize("scale", [1, 2, 3, 1.5, 2.7, 7 / 3])
def test_meta_upscale_applies_each_pixels_filter_at_its_source_pixel(scale):
    net = tiny()
    x = torch.rand(2, 3, 7, 5)
    with torch.no_grad():
        out = net(x, scale)
        ref = per_pixel_reference(net, x, scale)
    assert out.shape == ref.shape == (2, 3, math.floor(7 * scale + 0.5), math.floor(5 * scale + 0.5))
    assert torch.allclose(out, ref, atol=1e-5)


def test_output_sizes_round_half_up_and_x1_keeps_the_size():
    net = tiny()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 9, 4), 1).shape == (1, 3, 9, 4)
        assert net(torch.rand(1, 3, 9, 5), 1.5).shape == (1, 3, 14, 8)  # 13.5 -> 14, 7.5 -> 8
        assert net(torch.rand(1, 3, 10, 3), 2.7).shape == (1, 3, 27, 8)


def test_scales_it_cannot_represent_fail_in_one_line():
    assert scale_fraction(2.7) == (27, 10) and scale_fraction(4.0) == (4, 1)
    net = tiny()
    with pytest.raises(ConfigError, match="denominator"):
        net(torch.rand(1, 3, 4, 4), math.e)
    with pytest.raises(ConfigError, match=">= 1"):
        net(torch.rand(1, 3, 4, 4), 0.5)


def test_trains_end_to_end_through_the_weight_prediction():
    net = tiny().train()
    out = net(torch.rand(2, 3, 6, 5), 2.5)
    out.mean().backward()
    assert net.P2W.meta_block[0].weight.grad.abs().sum() > 0
    assert net.SFENet1.weight.grad.abs().sum() > 0
    assert net.sub_mean.weight.grad is None  # the mean shift is frozen, as in the release


def test_cached_filters_follow_new_weights():
    net = tiny()
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        first = net(x, 2)
        assert torch.equal(net(x, 2), first)  # served from the per-scale cache
        net.load_state_dict(tiny(seed=1).state_dict())
        assert not torch.allclose(net(x, 2), first)
        fresh = tiny(seed=1)
        assert torch.allclose(net(x, 2), fresh(x, 2), atol=1e-6)


def test_eval_output_is_clamped_and_batch_items_are_independent():
    net = tiny()
    x = torch.rand(3, 3, 6, 4)
    with torch.no_grad():
        out = net(x, 1.5)
        assert out.min() >= 0 and out.max() <= 1
        assert torch.allclose(out[1:2], net(x[1:2], 1.5), atol=1e-6)


def test_dense_concatenations_are_not_kept_for_backward():
    """Issue 12: autograd keeps an RDB's parts, not each growing concatenation; same outputs and gradients."""
    import gc
    import weakref

    from lrreid.models.sr.rdn_metasr import MetaRDN, on_concatenation

    conv = torch.nn.Conv2d(6, 4, 3, padding=1)
    parts = [torch.rand(2, 2, 5, 4, requires_grad=True), torch.rand(2, 4, 5, 4, requires_grad=True)]
    seen = []
    conv.register_forward_pre_hook(lambda mod, args: seen.append(weakref.ref(args[0])))
    out = on_concatenation(conv, parts)
    gc.collect()
    assert seen[0]() is None                     # the concatenation is gone, the graph still works
    out.square().sum().backward()
    grads = [p.grad.clone() for p in (*parts, conv.weight)]
    for p in (*parts, conv.weight):
        p.grad = None
    conv(torch.cat(parts, 1)).square().sum().backward()
    for g, p in zip(grads, (*parts, conv.weight)):
        torch.testing.assert_close(g, p.grad)

    torch.manual_seed(0)
    net = MetaRDN(G0=8, D=2, C=3, G=4)
    x = torch.rand(2, 3, 9, 7)
    y = net(x, 2)
    rdb = net.RDBs[0]
    h = torch.rand(2, 8, 9, 7)
    torch.testing.assert_close(rdb(h), rdb.LFF(rdb.convs(h)) + h, rtol=0, atol=0)
    y.mean().backward()
    assert all(p.grad is not None for p in net.RDBs.parameters())
