"""A trained PRI method -> LRReIDPipeline: same features as the method's own inference API."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lrreid.errors import CheckpointError
from lrreid.inference.identity import model_identity
from lrreid.inference.loading import load_pipeline, pipeline_from_method


@pytest.fixture(scope="module")
def pri_method():
    from lrreid.methods.pri.model import PRIMethod
    from lrreid.models.predictor import ScalePredictor
    from lrreid.models.reid import ReIDNet
    from lrreid.models.sr import build_sr_model

    torch.manual_seed(0)
    predictor = ScalePredictor("resnet18", num_scales=4, feat_dim=8)
    torch.nn.init.normal_(predictor.fc.weight, std=2.0)  # not the uniform initial prediction
    method = PRIMethod(
        sr_net=build_sr_model("metasr_rdn", G0=8, D=2, C=2, G=8),
        reid_net=ReIDNet("resnet18", num_classes=4, feat_dim=16),
        scale_predictor=predictor, scales=[1, 2, 3, 4], input_size=(32, 16), train_dataset=None,
        num_lr_images=4, hr_mean_area=32 * 16,
    )
    return method.eval()


def test_pipeline_of_a_method_reproduces_its_predict_sr_embed(pri_method):
    pipe = pipeline_from_method(pri_method, fast=False, device="cpu")
    assert pipe.scales == (1, 2, 3, 4) and pipe.input_size == (32, 16)
    rng = np.random.default_rng(0)
    probes = [torch.from_numpy(rng.random((3, h, w), dtype=np.float32)) for h, w in [(8, 4), (10, 5), (8, 4), (12, 6)]]
    out = pipe.embed_probes(probes)
    for i, x in enumerate(probes):
        probs = pri_method.predict_scales(x[None])
        scale = pri_method.scales[int(probs.argmax())]
        assert out.scales[i] == scale
        ref = pri_method.embed(pri_method.super_resolve(x[None], scale))[0]
        torch.testing.assert_close(out.features[i], ref, atol=1e-4, rtol=1e-4)


def test_gallery_features_equal_those_of_lrreid_evaluate(pri_method, tmp_path):
    """Search and evaluation embed a gallery file identically (PIL bicubic on uint8), so search
    ranks like the evaluation; torch's bicubic moved CAVIAR4REID Rank-1 by 1.2 points."""
    from PIL import Image

    from lrreid.methods.pri.data import load_image

    pipe = pipeline_from_method(pri_method, fast=False, device="cpu")
    rng = np.random.default_rng(1)
    paths = []
    for i, (h, w) in enumerate([(40, 20), (25, 11), (64, 30)]):  # enlarged and shrunk to 32x16
        arr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        paths.append(tmp_path / f"g{i}.png")
        Image.fromarray(arr).save(paths[-1])
    ref = pri_method.embed(torch.stack([load_image(str(p), (32, 16)) for p in paths]))  # the evaluation's gallery path
    got = pipe.embed_gallery([str(p) for p in paths])
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    # PIL images and uint8 arrays of the same files give the same features
    same = pipe.embed_gallery([np.asarray(Image.open(p)) for p in paths])
    torch.testing.assert_close(same, ref, atol=1e-5, rtol=1e-5)


def test_identity_depends_on_weights_not_on_precision(pri_method):
    fp32 = pipeline_from_method(pri_method, fast=False, device="cpu")
    fast = pipeline_from_method(pri_method, fast=True, device="cpu")
    before = model_identity(fp32)
    assert model_identity(fast) == before
    with torch.no_grad():
        pri_method.sr_net.SFENet1.weight.add_(1e-3)
    try:
        assert model_identity(pipeline_from_method(pri_method, fast=False, device="cpu")) != before
    finally:
        with torch.no_grad():
            pri_method.sr_net.SFENet1.weight.sub_(1e-3)


def test_missing_run_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such run"):
        load_pipeline(tmp_path / "nowhere")


def test_a_file_that_is_not_a_run_says_what_it_is_and_what_was_expected(tmp_path):
    weights = tmp_path / "weights.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, weights)
    with pytest.raises(CheckpointError) as exc:
        load_pipeline(weights)
    message = str(exc.value)
    assert "\n" not in message and "not found" not in message
    assert message.startswith(f"{weights}: a zip archive (torch.save format)")
    assert "not an lrreid run, checkpoint or re-ID weight file (expected a run folder" in message
