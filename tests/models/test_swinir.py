"""SwinIR-S: the official release format loads strictly; any input size, any batch; trainable."""
import pytest
import torch

from lrreid.errors import ConfigError
from lrreid.models.sr import build_sr_model
from lrreid.models.sr.swinir import SwinIR


def official_state_dict(dim=60, depths=(6, 6, 6, 6), heads=6, window=8, mlp=120, img_size=64, scale=2) -> dict:
    """Names and shapes of JingyunLiang/SwinIR's 002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth,
    written out from network_swinir.py (pixelshuffledirect, resi_connection '1conv', patch_norm)."""
    sd = {}

    def add(name, *shape):
        sd[name] = torch.randn(*shape) * 0.02

    add("conv_first.weight", dim, 3, 3, 3), add("conv_first.bias", dim)
    add("patch_embed.norm.weight", dim), add("patch_embed.norm.bias", dim)
    n = window * window
    for i, depth in enumerate(depths):
        for j in range(depth):
            p = f"layers.{i}.residual_group.blocks.{j}."
            add(p + "norm1.weight", dim), add(p + "norm1.bias", dim)
            add(p + "attn.relative_position_bias_table", (2 * window - 1) ** 2, heads)
            sd[p + "attn.relative_position_index"] = torch.zeros(n, n, dtype=torch.long)
            add(p + "attn.qkv.weight", 3 * dim, dim), add(p + "attn.qkv.bias", 3 * dim)
            add(p + "attn.proj.weight", dim, dim), add(p + "attn.proj.bias", dim)
            add(p + "norm2.weight", dim), add(p + "norm2.bias", dim)
            add(p + "mlp.fc1.weight", mlp, dim), add(p + "mlp.fc1.bias", mlp)
            add(p + "mlp.fc2.weight", dim, mlp), add(p + "mlp.fc2.bias", dim)
            if j % 2 == 1:  # shifted blocks store the mask of the 64x64 training patches
                sd[p + "attn_mask"] = torch.zeros((img_size // window) ** 2, n, n)
        add(f"layers.{i}.conv.weight", dim, dim, 3, 3), add(f"layers.{i}.conv.bias", dim)
    add("norm.weight", dim), add("norm.bias", dim)
    add("conv_after_body.weight", dim, dim, 3, 3), add("conv_after_body.bias", dim)
    add("upsample.0.weight", 3 * scale * scale, dim, 3, 3), add("upsample.0.bias", 3 * scale * scale)
    return sd


def test_official_release_format_loads_strictly(tmp_path):
    official = official_state_dict()
    index = SwinIR().state_dict()["layers.0.residual_group.blocks.0.attn.relative_position_index"]
    for k in official:
        if k.endswith("relative_position_index"):
            official[k] = index.clone()
    torch.save({"params": official}, tmp_path / "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth")
    net = build_sr_model("swinir_s", weights=tmp_path / "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth")
    assert torch.equal(net.conv_first.weight, official["conv_first.weight"])
    assert torch.equal(net.upsample[0].bias, official["upsample.0.bias"])


def test_parameter_count_is_swinir_s():
    net = SwinIR()
    total = sum(p.numel() for p in net.parameters())
    tables = sum(p.numel() for n, p in net.named_parameters() if n.endswith("relative_position_bias_table"))
    assert total == 910_152  # "0.91M" with the relative-position bias tables
    assert total - tables == 877_752  # the paper's 878K counts without them


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return SwinIR(embed_dim=12, depths=(2, 2), num_heads=(3, 3), window_size=4, img_size=16).eval()


def test_inputs_not_divisible_by_the_window_are_padded_and_cropped(small):
    with torch.no_grad():
        assert small(torch.rand(1, 3, 13, 10), 2).shape == (1, 3, 26, 20)
        assert small(torch.rand(1, 3, 3, 2), 2).shape == (1, 3, 6, 4)  # smaller than one window
        assert small(torch.rand(1, 3, 16, 16), 2).shape == (1, 3, 32, 32)  # the stored-mask size


def test_batch_items_are_processed_independently(small):
    x = torch.rand(3, 3, 11, 9)
    with torch.no_grad():
        batch = small(x, 2)
        assert torch.allclose(batch[2:], small(x[2:], 2), atol=1e-5)


def test_a_backward_pass_reaches_every_stage():
    net = SwinIR(embed_dim=12, depths=(2,), num_heads=(3,), window_size=4, img_size=8).train()
    net(torch.rand(2, 3, 9, 7), 2).square().mean().backward()
    assert net.conv_first.weight.grad.abs().sum() > 0
    assert net.layers[0].residual_group.blocks[1].attn.relative_position_bias_table.grad.abs().sum() > 0
    assert net.upsample[0].weight.grad.abs().sum() > 0


def test_x2_only_unless_pre_upsampling(small):
    with pytest.raises(ConfigError, match=r"^swinir_s does x2 only; asked for x3$"):
        small(torch.rand(1, 3, 8, 8), 3)
    pre = SwinIR(embed_dim=12, depths=(2,), num_heads=(3,), window_size=4, img_size=8, pre_upsample=True).eval()
    assert pre.supported_scales is None
    with torch.no_grad():
        assert pre(torch.rand(1, 3, 10, 7), 3).shape == (1, 3, 30, 21)  # bicubic to 15x11, x2, crop
        assert pre(torch.rand(1, 3, 32, 16), 4).shape == (1, 3, 128, 64)
        assert pre(torch.rand(1, 3, 10, 7), 2).shape == (1, 3, 20, 14)


def test_forward_equals_the_official_network_on_the_same_weights():
    """SwinIR's own architecture code (as packaged by spandrel, which keeps the official module and
    parameter names) with our weights gives our output: shifted windows, masks, relative positions,
    residual groups and the pixel-shuffle reconstruction all computed as the paper's code does."""
    spandrel_swinir = pytest.importorskip(
        "spandrel.architectures.SwinIR.__arch.SwinIR",
        reason="spandrel (a test dependency in pyproject's [test] extra) carries the official SwinIR code")
    torch.manual_seed(0)
    ours = SwinIR(embed_dim=12, depths=(2, 2), num_heads=(2, 2), window_size=4, img_size=16).eval()
    with torch.no_grad():
        for p in ours.parameters():  # away from the initialisation's zeros and ones
            p.add_(torch.randn_like(p) * 0.05)
    official = spandrel_swinir.SwinIR(
        img_size=16, patch_size=1, in_chans=3, embed_dim=12, depths=[2, 2], num_heads=[2, 2], window_size=4,
        mlp_ratio=2.0, upscale=2, img_range=1.0, upsampler="pixelshuffledirect", resi_connection="1conv").eval()
    official.load_state_dict(ours.state_dict(), strict=True)
    x = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # the official forward does not clamp; ours clamps outside training
        assert torch.allclose(ours(x, 2), official(x).clamp(0, 1), atol=1e-5)
