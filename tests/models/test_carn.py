"""CARN-M: the authors' carn_m.pth loads strictly and reproduces the published Set5 PSNR."""
import pytest
import torch

from lrreid.errors import ConfigError
from lrreid.models.sr import build_sr_model


def release_state_dict() -> dict:
    """Keys and shapes of nmhkahn/CARN-pytorch's carn_m.pth (multi_scale=True, group=4)."""
    sd = {}

    def conv(name, cout, cin_per_group, k):
        sd[f"{name}.weight"] = torch.randn(cout, cin_per_group, k, k) * 0.01
        sd[f"{name}.bias"] = torch.zeros(cout)

    for shift in ("sub_mean", "add_mean"):
        conv(f"{shift}.shifter", 3, 3, 1)
    conv("entry", 64, 3, 3)
    for b in ("b1", "b2", "b3"):
        conv(f"{b}.b1.body.0", 64, 16, 3)
        conv(f"{b}.b1.body.2", 64, 16, 3)
        conv(f"{b}.b1.body.4", 64, 64, 1)
        for i, cin in ((1, 128), (2, 192), (3, 256)):
            conv(f"{b}.c{i}.body.0", 64, cin, 1)
    for i, cin in ((1, 128), (2, 192), (3, 256)):
        conv(f"c{i}.body.0", 64, cin, 1)
    conv("upsample.up2.body.0", 256, 16, 3)
    conv("upsample.up3.body.0", 576, 16, 3)
    conv("upsample.up4.body.0", 256, 16, 3)
    conv("upsample.up4.body.3", 256, 16, 3)
    conv("exit", 3, 64, 3)
    return sd


def test_release_layout_loads_strictly_and_has_the_published_size(tmp_path):
    torch.save(release_state_dict(), tmp_path / "carn_m.pth")
    net = build_sr_model("carn_m", weights=tmp_path / "carn_m.pth")
    assert sum(p.numel() for p in net.parameters()) == 414_811


def test_scales_two_three_four_and_nothing_else():
    net = build_sr_model("carn_m").eval()
    x = torch.rand(2, 3, 9, 7)
    with torch.no_grad():
        for s in (2, 3, 4):
            assert net(x, s).shape == (2, 3, 9 * s, 7 * s)
    with pytest.raises(ConfigError, match=r"^carn_m does x2, x3, x4 only; asked for x2.5$"):
        net(x, 2.5)


def test_trains_and_keeps_the_mean_shift_frozen():
    net = build_sr_model("carn_m").train()
    net(torch.rand(1, 3, 8, 8), 3).mean().backward()
    assert net.entry.weight.grad is not None and net.upsample.up3.body[0].weight.grad.abs().sum() > 0
    assert net.upsample.up2.body[0].weight.grad is None  # other branches untouched at x3
    assert not net.sub_mean.shifter.weight.requires_grad


@pytest.mark.shared
def test_the_authors_file_loads_strictly(shared):
    path = shared("weights", "carn_m.pth")
    net = build_sr_model("carn_m", weights=path)
    assert torch.allclose(net.sub_mean.shifter.bias, -torch.tensor([0.4488, 0.4371, 0.4040]), atol=1e-4)


@pytest.mark.shared
def test_set5_x2_matches_the_published_psnr(shared):
    from lrreid.evaluation.sr_metrics import benchmark_pairs, score_sr

    net = build_sr_model("carn_m", weights=shared("weights", "carn_m.pth"))
    score = score_sr(net, list(benchmark_pairs(shared("data", "Set5"), 2)), 2)
    assert score.images == 5
    assert abs(score.psnr - 37.53) < 0.2, score.psnr  # Ahn et al. 2018, Table 2
