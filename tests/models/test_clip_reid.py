"""The CLIP video re-ID encoder: positional-embedding interpolation, identity adapters at init,
identity prompts, and loading OpenAI-layout CLIP checkpoints (and refusing other architectures)."""
from __future__ import annotations

import warnings

import pytest
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.tokenizer import SimpleTokenizer

from lrreid.errors import CheckpointError
from lrreid.models.reid.clip_reid import (
    ClipTextEncoder,
    ClipVideoEncoder,
    IdentityPrompts,
    build_clip_reid_encoders,
    interpolate_positional_embedding,
    load_openai_clip,
    openai_architecture,
)


def tiny_open_clip(image_size=224, patch_size=16) -> CLIP:
    """open_clip's own CLIP at the 'tiny' size, QuickGELU as OpenAI's models: the reference."""
    torch.manual_seed(0)
    return CLIP(32, CLIPVisionCfg(layers=2, width=64, patch_size=patch_size, image_size=image_size, head_width=32),
                CLIPTextCfg(context_length=16, vocab_size=49408, width=64, heads=2, layers=2),
                quick_gelu=True).eval()


@pytest.fixture(scope="module")
def openai_archive(tmp_path_factory):
    """A TorchScript archive in OpenAI's key layout (as ViT-B-16.pt is), of a tiny CLIP."""
    model = tiny_open_clip()
    path = tmp_path_factory.mktemp("clip") / "tiny-openai.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(
            model, {"encode_image": (torch.ones(1, 3, 224, 224),),
                    "encode_text": (torch.zeros(1, 16, dtype=torch.int),)}, check_trace=False)
        torch.jit.save(traced, str(path))
    return path, model


# ----------------------------------------------------------------------- positional embedding
def test_positional_embedding_interpolation_keeps_class_token_and_gives_16x8_grid():
    width = 8
    cls = torch.randn(1, width)
    # A 14x14 grid whose values are a smooth ramp along x (column index), the same in every channel.
    ramp = torch.arange(14.0).repeat(14, 1).reshape(196, 1).expand(196, width)
    pos = torch.cat([cls, ramp])
    out = interpolate_positional_embedding(pos, (16, 8))
    assert out.shape == (1 + 16 * 8, width)
    assert torch.equal(out[0], cls[0])
    grid = out[1:, 0].reshape(16, 8)
    # Rows stay identical (no change along y) and values increase left to right across the width.
    assert torch.allclose(grid, grid[:1].expand(16, 8), atol=1e-4)
    assert bool((grid[0, 1:] > grid[0, :-1]).all())
    assert 0.0 <= float(grid[0, 0]) < 2.0 and 11.0 < float(grid[0, -1]) <= 13.0


def test_positional_embedding_of_wrong_length_is_refused():
    with pytest.raises(CheckpointError, match="square grid"):
        interpolate_positional_embedding(torch.zeros(1 + 15, 4), (4, 2))


# ------------------------------------------------------------------------------- adapters
def test_adapters_start_as_identity_so_pretrained_output_is_unchanged():
    """At init the adapted video encoder computes exactly what open_clip's own ViT computes per frame."""
    reference = tiny_open_clip(image_size=(64, 32))
    encoder = ClipVideoEncoder(image_size=(64, 32), patch_size=16, width=64, layers=2, heads=2, embed_dim=32,
                               adapter_dim=8, pooling="mean")
    encoder.visual.load_state_dict(reference.visual.state_dict())
    frames = torch.rand(2, 3, 3, 64, 32)  # 2 tracklets of 3 different frames: the temporal adapter is exercised
    with torch.no_grad():
        _, projected = encoder.encode_frames(frames)
        expected = reference.encode_image(((frames.flatten(0, 1) - encoder.mean) / encoder.std)).reshape(2, 3, -1)
        assert torch.allclose(projected, expected, atol=1e-5)
        pooled = encoder(frames).projected
        assert torch.allclose(pooled, expected.mean(1), atol=1e-5)
        # Once an adapter has learnt something, the output does change.
        torch.nn.init.normal_(encoder.adapters[0].temporal.up.weight, std=0.5)
        assert not torch.allclose(encoder.encode_frames(frames)[1], expected, atol=1e-3)


def test_attention_pooling_starts_as_mean_and_one_frame_tracklets_work():
    encoder = ClipVideoEncoder(image_size=(32, 16), patch_size=16, width=64, layers=1, heads=2, embed_dim=32,
                               adapter_dim=8, pooling="attention")
    frames = torch.rand(2, 4, 3, 32, 16)
    with torch.no_grad():
        per_frame, _ = encoder.encode_frames(frames)
        assert torch.allclose(encoder(frames).feature, per_frame.mean(1), atol=1e-6)
        one = encoder(frames[:, :1])
    assert one.feature.shape == (2, 64)


def test_adapter_parameters_are_a_small_share_of_vit_b16():
    with torch.device("meta"):
        encoder = ClipVideoEncoder()  # paper size, on the meta device: shapes only
    total = sum(p.numel() for p in encoder.parameters())
    adapters = sum(p.numel() for p in encoder.adapter_parameters())
    assert encoder.grid_size == (16, 8)
    assert encoder.visual.positional_embedding.shape == (129, 768)
    assert adapters < 0.06 * total


# -------------------------------------------------------------------------------- prompts
def test_identity_prompts_replace_the_x_tokens_and_learn_per_identity():
    text = ClipTextEncoder(embed_dim=32, context_length=16, width=64, layers=1, heads=2)
    prompts = IdentityPrompts(num_classes=5, width=64, context_length=16)
    ids = SimpleTokenizer(context_length=16)(["A photo of a X X X X person."])[0]
    pids = torch.tensor([1, 3])
    emb, eot = prompts.embed(pids, text.token_embedding)
    assert emb.shape == (2, 16, 64)
    assert eot.tolist() == [int(ids.argmax())] * 2
    start = prompts.context_start
    assert torch.equal(emb[0, start:start + 4], prompts.context[1].detach())
    words = text.token_embedding(ids)
    assert torch.equal(emb[1, :start], words[:start])
    assert torch.equal(emb[1, start + 4:], words[start + 4:])
    text(emb, eot).sum().backward()
    grad = prompts.context.grad
    assert grad[1].abs().sum() > 0 and grad[3].abs().sum() > 0
    assert grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_openai_torchscript_archive_loads_into_both_towers(openai_archive):
    path, reference = openai_archive
    image, text = build_clip_reid_encoders("tiny", image_size=(224, 224))
    load_openai_clip(path, image, text)
    x = torch.rand(2, 3, 224, 224)
    tokens = SimpleTokenizer(context_length=16)(["a photo of a person", "a man in a red coat"])
    with torch.no_grad():
        assert torch.allclose(image(x.unsqueeze(1)).projected,
                              reference.encode_image((x - image.mean) / image.std), atol=1e-5)
        assert torch.allclose(text.encode_tokens(tokens), reference.encode_text(tokens), atol=1e-5)
    assert torch.allclose(text.logit_scale, reference.logit_scale.detach())


def test_openai_checkpoint_loads_at_256x128_with_interpolated_positions(openai_archive, tmp_path):
    path, reference = openai_archive
    plain = tmp_path / "plain.pt"
    torch.save(reference.state_dict(), plain)  # a plain state-dict file in the same layout
    image, text = build_clip_reid_encoders("tiny", image_size=(256, 128))
    load_openai_clip(plain, image, text)
    expected = interpolate_positional_embedding(reference.visual.positional_embedding.detach(), (16, 8))
    assert torch.allclose(image.visual.positional_embedding, expected)
    assert torch.equal(image.visual.conv1.weight, reference.visual.conv1.weight)
    assert torch.count_nonzero(image.adapters[0].attn.up.weight) == 0  # adapters keep their identity init


def _meta_openai_state(vision_cfg: CLIPVisionCfg) -> dict:
    with torch.device("meta"):
        return CLIP(512, vision_cfg, CLIPTextCfg(), quick_gelu=True).state_dict()


@pytest.mark.parametrize("vision_cfg, found", [
    (CLIPVisionCfg(layers=12, width=768, patch_size=32, image_size=224), "ViT-B/32"),
    (CLIPVisionCfg(layers=(3, 4, 6, 3), width=64, image_size=224), "RN50"),
])
def test_openai_checkpoint_of_another_architecture_is_a_one_line_error(vision_cfg, found):
    state = _meta_openai_state(vision_cfg)
    assert openai_architecture(state).name == found
    with torch.device("meta"):  # the paper-size encoder, shapes only
        image, text = ClipVideoEncoder(), ClipTextEncoder()
    with pytest.raises(CheckpointError) as err:
        load_openai_clip(state, image, text)
    message = str(err.value)
    assert "\n" not in message
    assert f"is {found}" in message and "expects ViT-B/16" in message


def test_missing_checkpoint_file_is_a_checkpoint_error(tmp_path):
    image, text = build_clip_reid_encoders("tiny", image_size=(64, 32))
    with pytest.raises(CheckpointError, match="no such weight file"):
        load_openai_clip(tmp_path / "ViT-B-16.pt", image, text)
