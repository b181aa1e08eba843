"""The OSNet family as plain modules: torchreid's files load strictly and compute what torchreid computes;
Intel's OpenVINO IRs import into a trainable PyTorch module that computes what the OpenVINO runtime computes."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lrreid.errors import CheckpointError
from lrreid.models.reid import ReIDNet, build_encoder
from lrreid.models.reid.load import load_encoder
from lrreid.models.reid.osnet_omz import GroupNormGate, OSNetOMZ
from lrreid.models.weights import load_weights, read_state_dict

OMZ = {
    "0277": "omz/person-reidentification-retail-0277/FP16/person-reidentification-retail-0277.xml",
    "0286": "omz/person-reidentification-retail-0286/FP16/person-reidentification-retail-0286.xml",
    "0287": "omz/person-reidentification-retail-0287/FP32/person-reidentification-retail-0287.xml",
    "0288": "omz/person-reidentification-retail-0288/FP32/person-reidentification-retail-0288.xml",
}


def torchreid_module(name: str):
    """torchreid/reid/models/<name>.py loaded by path (``import torchreid`` needs cv2, which tests lack)."""
    spec = importlib.util.find_spec("torchreid")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torchreid is not installed (it is only the reference implementation for these tests)")
    path = Path(list(spec.submodule_search_locations)[0]) / "reid" / "models" / f"{name}.py"
    if not path.is_file():
        pytest.skip(f"{path} not found in the installed torchreid")
    mod_spec = importlib.util.spec_from_file_location(f"torchreid_ref_{name}", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def randomise(net: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter and normalisation statistic random, so no layer can hide behind a zero or a one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.rand(p.shape, generator=g) * 0.4 + (0.8 if name.endswith("weight") else -0.2))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / max(1, p[0].numel())) ** 0.5)
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    return net


def images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 256, 128, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- torchreid layouts
@pytest.mark.parametrize("file_name, ours", [("osnet", "osnet_x0_25"), ("osnet", "osnet_ibn_x1_0"), ("osnet_ain", "osnet_ain_x0_25")])
def test_torchreid_state_dicts_load_strictly_and_give_torchreids_features(file_name, ours):
    reference = getattr(torchreid_module(file_name), ours)(num_classes=7, pretrained=False)
    reference = randomise(reference).eval()
    net = build_encoder(ours, num_classes=7).eval()
    report = load_weights(net, reference.state_dict(), strict=True)
    assert report.ok
    x = images()
    with torch.no_grad():
        assert torch.allclose(net(x), reference(x), atol=1e-5, rtol=1e-4)


def test_a_torchreid_file_of_another_width_is_refused_naming_the_first_mismatch(tmp_path):
    path = tmp_path / "osnet_x0_25.pth"
    torch.save(build_encoder("osnet_x0_25", num_classes=5).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"conv1\.conv\.weight: file \[16,3,7,7\] vs model \[32,3,7,7\]"):
        load_encoder("osnet_x0_5", path)
    net = load_encoder(path)  # unnamed: the file's own architecture, found from its keys
    assert net.channels == (16, 64, 96, 128) and net.classifier.out_features == 5


@pytest.mark.shared
@pytest.mark.parametrize("file", ["osnet_x0_25_market1501.pth", "osnet_x0_25_msmt17.pth"])
def test_torchreid_model_zoo_files_match_their_own_classifier(shared, file):
    path = shared("weights", "torchreid", file)
    state = read_state_dict(path)
    reference = torchreid_module("osnet").osnet_x0_25(num_classes=state["classifier.weight"].shape[0], pretrained=False)
    reference.load_state_dict(state, strict=True)
    reference.eval()
    net = load_encoder(path).eval()
    x = images(4)
    with torch.no_grad():
        ours = net.logits(net(x))
        theirs = reference.classifier(reference(x))
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4)
    assert ours.argmax(1).tolist() == theirs.argmax(1).tolist()


# --------------------------------------------------------------------------- OpenVINO IR
def bgr_255(x: torch.Tensor) -> np.ndarray:
    """lrreid's RGB [0, 1] batch as the IRs take it: BGR, 0-255."""
    return (x.flip(1) * 255.0).numpy().astype(np.float32)


def normalised(net, x: torch.Tensor) -> torch.Tensor:
    spec = net.input_spec
    return (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)


def openvino_embeddings(xml: Path, x: torch.Tensor) -> np.ndarray:
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    batch = bgr_255(x)
    return np.concatenate([compiled(batch[i:i + 1])[0] for i in range(len(batch))])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def converted_ir(tmp_path_factory):
    """A random OMZ-style OSNet (x0.25, a conv3 gate of 8 groups) converted to an FP16 IR with Intel's preprocessing.

    This is what CI tests the importer on: no file of ../shared, the same kind of graph.
    """
    ov = pytest.importorskip("openvino")
    torch.manual_seed(0)
    net = randomise(OSNetOMZ((16, 64, 96, 128), gates=(("fc", "gn16"), ("fc", "gn8"), ("fc", "gn4"))), seed=3).eval()
    model = ov.convert_model(net, example_input=torch.rand(1, 3, 256, 128), input=[1, 3, 256, 128])
    ppp = ov.preprocess.PrePostProcessor(model)
    ppp.input().tensor().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().reverse_channels().mean([123.675, 116.28, 103.53]).scale([58.395, 57.12, 57.375])
    model = ppp.build()
    xml = tmp_path_factory.mktemp("ir") / "random_osnet_omz.xml"
    ov.save_model(model, str(xml), compress_to_fp16=True)
    return xml, net


def test_a_converted_ir_imports_into_the_same_network(converted_ir):
    xml, source = converted_ir
    net = load_encoder(xml).eval()
    assert isinstance(net, OSNetOMZ)
    gates = [b.gate for stage in (net.conv2, net.conv3, net.conv4) for b in stage if hasattr(b, "gate")]
    assert [int(g.groups) for g in gates if isinstance(g, GroupNormGate)] == [16, 8, 4]
    spec = net.input_spec
    assert np.allclose(spec.mean, (0.485, 0.456, 0.406), atol=1e-3) and np.allclose(spec.std, (0.229, 0.224, 0.225), atol=1e-3)
    x = images(4)
    with torch.no_grad():
        ours = net(normalised(net, x)).numpy()
        theirs_pt = source(normalised(net, x)).numpy()
    assert cosines(ours, openvino_embeddings(xml, x)).min() >= 0.9999
    assert cosines(ours, theirs_pt).min() >= 0.999  # FP16 weights: close to the fp32 original, not equal


def test_an_imported_ir_is_trainable(converted_ir):
    xml, _ = converted_ir
    net = load_encoder(xml)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # folded BNs are conv biases
    assert all(p.requires_grad and p.dtype == torch.float32 for p in net.parameters())
    x = normalised(net, images(2))
    before = net(x).detach()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(x).pow(2).mean().backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if not n.endswith((".groups",)))
    opt.step()
    assert not torch.allclose(net(x).detach(), before)


def test_ir_bad_files_are_refused_in_one_line(converted_ir, tmp_path):
    xml, _ = converted_ir
    lonely = tmp_path / "lonely.xml"
    lonely.write_text(xml.read_text())
    with pytest.raises(CheckpointError, match=r"lonely\.xml: OpenVINO IR without its weights file lonely\.bin"):
        load_encoder(lonely)
    truncated = tmp_path / "truncated.xml"
    truncated.write_text(xml.read_text())
    data = xml.with_suffix(".bin").read_bytes()
    truncated.with_suffix(".bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError) as err:
        load_encoder(truncated)
    assert "truncated.xml" in str(err.value) and "\n" not in str(err.value)
    assert "truncated.bin" in str(err.value) and "shorter than the graph needs" in str(err.value)


def test_an_ir_of_another_network_is_refused(tmp_path):
    ov = pytest.importorskip("openvino")
    other = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    xml = tmp_path / "detector.xml"
    ov.save_model(ov.convert_model(other, example_input=torch.rand(1, 3, 64, 64)), str(xml))
    with pytest.raises(CheckpointError, match=r"detector\.xml: not an OSNet person re-ID graph"):
        load_encoder(xml)
    with pytest.raises(CheckpointError, match="not a osnet_omz_x1_0|not an OSNet"):
        load_encoder("osnet_omz_x1_0", xml)


def test_naming_the_wrong_width_for_an_ir_is_refused(converted_ir):
    xml, _ = converted_ir
    with pytest.raises(CheckpointError, match=r"channels \[16, 64, 96, 128\], not a osnet_omz_x1_0"):
        load_encoder("osnet_omz_x1_0", xml)


@pytest.mark.shared
@pytest.mark.parametrize("model", sorted(OMZ))
def test_omz_files_match_the_openvino_runtime(shared, model):
    xml = shared("weights", *OMZ[model].split("/"))
    net = load_encoder(xml).eval()
    crops = sorted(shared("data", "CAVIAR4REID", "CAVIARa").glob("*.jpg"))[::97][:3]
    from lrreid.data.imageio import read_image

    real = torch.stack([
        torch.from_numpy(np.asarray(read_image(p).resize((128, 256), resample=3), dtype=np.float32) / 255.0).permute(2, 0, 1)
        for p in crops])
    x = torch.cat([real, images(2)])
    with torch.no_grad():
        ours = net(normalised(net, x)).numpy()
    assert cosines(ours, openvino_embeddings(xml, x)).min() >= 0.9999


# --------------------------------------------------------------------------- usable as F and P
def test_an_encoder_is_f_with_its_own_embedding_and_a_backbone_for_p(converted_ir):
    xml, _ = converted_ir
    f = ReIDNet("osnet_omz_x0_25", num_classes=6, pretrained=str(xml)).eval()
    encoder = load_encoder(xml).eval()
    x = normalised(encoder, images(2))
    with torch.no_grad():
        assert torch.allclose(f(x), encoder(x), atol=1e-6)  # untrained F is the pretrained network
    f.train()
    feats, logits = f(x)
    assert feats.shape == (2, 256) and logits.shape == (2, 6)
    from lrreid.models.predictor import ScalePredictor

    p = ScalePredictor("osnet_omz_x0_25", num_scales=4, feat_dim=16, pretrained=str(xml))
    assert p(torch.rand(2, 3, 128, 64)).shape == (2, 4)  # a feature map at any size


def test_loading_an_irs_weights_into_a_default_module_brings_its_group_counts(converted_ir):
    xml, _ = converted_ir  # gates of 16, 8 and 4 groups; the default x0.25 module has 16, 8 and 16
    imported = load_encoder(xml).eval()
    default = build_encoder("osnet_omz_x0_25").eval()
    load_weights(default, read_state_dict(xml), strict=True)
    x = normalised(imported, images(2))
    with torch.no_grad():
        assert torch.allclose(default(x), imported(x), atol=1e-5)
