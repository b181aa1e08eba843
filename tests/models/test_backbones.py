"""create_backbone: headless timm CNNs, and published ImageNet files imported into them."""
import pytest
import torch
import torchvision

from lrreid.errors import CheckpointError, ConfigError
from lrreid.models.backbones import create_backbone
from lrreid.models.weights import IMPORTERS, read_state_dict


def test_returns_the_last_feature_map_and_its_channels():
    net, channels = create_backbone("resnet18")
    out = net(torch.rand(2, 3, 64, 32))
    assert channels == 512 and out.shape == (2, 512, 2, 1)


def test_channels_are_what_the_network_outputs_not_a_guess():
    net, channels = create_backbone("mobilenetv3_small_100")
    assert net(torch.rand(1, 3, 64, 32)).shape[1] == channels  # timm's num_features says 576


def test_unknown_names_and_token_models_are_config_errors():
    with pytest.raises(ConfigError, match="unknown backbone 'resnet5o'"):
        create_backbone("resnet5o")
    with pytest.raises(ConfigError, match="feature map"):
        create_backbone("vit_tiny_patch16_224")


def test_hub_weights_offline_ask_for_a_local_file(monkeypatch, tmp_path):
    monkeypatch.setenv("LRREID_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="resnet18.*local path") as exc:
        create_backbone("resnet18", pretrained="timm")
    assert "\n" not in str(exc.value)


def test_torchvision_resnet50_file_loads_into_timm_resnet50(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50()
    torch.save(tv.state_dict(), tmp_path / "resnet50-tv.pth")
    net, channels = create_backbone("resnet50", pretrained=tmp_path / "resnet50-tv.pth")  # strict
    assert channels == 2048
    assert torch.equal(net.layer4[2].conv3.weight, tv.layer4[2].conv3.weight)
    assert torch.equal(net.layer1[0].downsample[1].running_var, tv.layer1[0].downsample[1].running_var)
    tv.fc = torch.nn.Identity()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x).mean((2, 3)), tv.eval()(x), atol=1e-5)


def test_timm_file_with_classifier_loads_and_a_wrong_architecture_does_not(tmp_path):
    import timm

    r18 = timm.create_model("resnet18", num_classes=10).state_dict()
    torch.save({"state_dict": r18}, tmp_path / "r18.pth")
    net, _ = create_backbone("resnet18", pretrained=tmp_path / "r18.pth")
    assert torch.equal(net.layer4[1].conv2.weight, r18["layer4.1.conv2.weight"])
    with pytest.raises(CheckpointError, match="r18.pth.*missing keys"):
        create_backbone("resnet34", pretrained=tmp_path / "r18.pth")
    net, _ = create_backbone("resnet34", pretrained=tmp_path / "r18.pth", strict=False)
    assert torch.equal(net.conv1.weight, r18["conv1.weight"])  # what fits is loaded


@pytest.fixture
def mobilenet_file(shared):
    return shared("weights", "mobilenetv2_imagenet_features.pt")


@pytest.mark.shared
def test_every_tensor_of_the_mobilenetv2_port_maps_onto_timm(mobilenet_file):
    import timm

    port = read_state_dict(mobilenet_file)
    mapped = IMPORTERS.get("mobilenetv2_port")(port)
    target = timm.create_model("mobilenetv2_100", num_classes=0, global_pool="").state_dict()
    assert len(port) == len(mapped) == len(target) == 312
    assert mapped.keys() == target.keys()
    assert all(mapped[k].shape == target[k].shape for k in target)
    assert sum(v.numel() for k, v in mapped.items() if not k.endswith("num_batches_tracked")) == 2_257_984


@pytest.mark.shared
def test_imagenet_mobilenetv2_gives_sensible_features_of_a_real_image(mobilenet_file, shared):
    from lrreid.data.imageio import read_image
    from lrreid.evaluation.sr_metrics import to_tensor

    net, channels = create_backbone("mobilenetv2_100", pretrained=mobilenet_file)
    random_net, _ = create_backbone("mobilenetv2_100")
    assert channels == 1280
    # trained BatchNorm statistics, not the initial zeros/ones
    assert net.bn1.running_mean.abs().mean() > 0.01 and (net.bn1.running_var - 1).abs().mean() > 0.01

    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    images = [read_image(shared("data", "Set5", "HR", f"{n}.bmp")).resize((160, 160)) for n in ("baby", "butterfly")]
    x = torch.stack([(to_tensor(im) - mean) / std for im in images])
    with torch.no_grad():
        feats = net.eval()(x).mean((2, 3))
        random_feats = random_net.eval()(x).mean((2, 3))
    assert torch.isfinite(feats).all() and feats.min() >= 0 and feats.max() <= 6  # ReLU6 outputs
    active = (feats > 0.05).float().mean()
    assert 0.05 < active < 0.98  # alive, not saturated
    # a baby and a butterfly look different to an ImageNet model (cos ~0.5 measured); to a random
    # network every image looks alike (cos ~0.99)
    cos = torch.nn.functional.cosine_similarity(feats[0], feats[1], dim=0)
    random_cos = torch.nn.functional.cosine_similarity(random_feats[0], random_feats[1], dim=0)
    assert cos < 0.9 and random_cos > cos
