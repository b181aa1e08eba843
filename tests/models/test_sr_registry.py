"""The SR registry and the shared interface, with the bicubic baseline as the simplest member."""
import pytest
import torch
import torch.nn.functional as F

from lrreid.errors import CheckpointError, ConfigError
from lrreid.models.sr import SR_MODELS, build_sr_model, output_size


def test_registry_knows_the_four_models_and_names_them_on_a_typo():
    assert SR_MODELS.names() == ["bicubic", "carn_m", "metasr_rdn", "swinir_s"]
    with pytest.raises(ConfigError, match="unknown SR model 'carn'.*carn_m"):
        build_sr_model("carn")


def test_supported_scales_are_declared():
    assert build_sr_model("bicubic").supported_scales is None
    assert build_sr_model("carn_m").supported_scales == (2.0, 3.0, 4.0)
    assert build_sr_model("swinir_s").supported_scales == (2.0,)
    assert build_sr_model("metasr_rdn", G0=4, D=1, C=1, G=2).supported_scales is None


def test_weights_that_belong_to_another_model_are_refused(tmp_path):
    torch.save({"conv_first.weight": torch.zeros(60, 3, 3, 3)}, tmp_path / "swinir.pth")
    with pytest.raises(CheckpointError, match="not a CARN release file"):
        build_sr_model("carn_m", weights=tmp_path / "swinir.pth")


def test_output_size_rounds_half_up():
    assert output_size(37, 92, 1.5) == (56, 138)
    assert output_size(5, 3, 2.5) == (13, 8)


def test_bicubic_is_antialiased_torch_bicubic_at_any_scale():
    net = build_sr_model("bicubic").eval()
    x = torch.rand(2, 3, 10, 7)
    out = net(x, 2.5)
    assert out.shape == (2, 3, 25, 18)
    ref = F.interpolate(x, size=(25, 18), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    assert torch.allclose(out, ref)
    assert torch.equal(net(x, 1), x)
    with pytest.raises(ConfigError, match=">= 1"):
        net(x, 0.5)


def test_outputs_are_clamped_in_eval_but_not_in_training():
    x = torch.zeros(1, 3, 8, 8)
    x[..., ::2, :] = 1.0  # stripes make bicubic overshoot
    net = build_sr_model("bicubic")
    assert net.train()(x, 2).max() > 1.0
    out = net.eval()(x, 2)
    assert out.max() <= 1.0 and out.min() >= 0.0


@pytest.mark.shared
def test_bicubic_on_set5_x2_is_the_standard_baseline(shared):
    from lrreid.evaluation.sr_metrics import benchmark_pairs, score_sr

    score = score_sr(build_sr_model("bicubic"), list(benchmark_pairs(shared("data", "Set5"), 2)), 2)
    assert abs(score.psnr - 33.66) < 0.1, score.psnr
