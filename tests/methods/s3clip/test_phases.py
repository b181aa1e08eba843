"""Phase freezing (only the named modules learn in each phase), prompt learning in stage 0, and the
L_TDP gradient path, on a tiny S3-CLIP."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from lrreid.methods.s3clip.config import LossConfig


def _grad_owners(method) -> set[str]:
    """Top-level groups of parameters that received a non-zero gradient."""
    owners = set()
    for name, p in method.named_parameters():
        if p.grad is not None and p.grad.abs().sum() > 0:
            parts = name.split(".")
            if parts[0] == "image_encoder":
                owners.add("image_encoder." + parts[1])  # visual / adapters / pooling
            else:
                owners.add(parts[0])
    return owners


def _one_step(method, phase_name: str, cpu_context, first_batch) -> dict:
    phase = next(p for p in method.phases() if p.name == phase_name)
    method.train()
    method.apply_phase(phase)
    dataset = method.train_dataset(phase)
    method.on_epoch_start(phase, 0, cpu_context())
    batch = first_batch(dataset)
    method.zero_grad(set_to_none=True)
    out = method(batch, phase, 0)
    out["loss"].backward()
    return out


@pytest.mark.parametrize("schedule, phase, expected", [
    ("two_phase", "prompt", {"prompts"}),
    ("two_phase", "sr", {"sr"}),
    ("two_phase", "reid", {"image_encoder.adapters", "reid_head"}),
    ("joint", "joint", {"sr", "image_encoder.adapters", "reid_head"}),
])
def test_only_the_phase_modules_get_gradients(train_records, schedule, phase, expected, make_method, tiny_config,
                                              cpu_context, first_batch):
    method = make_method(train_records, tiny_config(schedule=schedule))
    out = _one_step(method, phase, cpu_context, first_batch)
    assert torch.isfinite(out["loss"])
    assert _grad_owners(method) == expected
    # The optimiser holds exactly the parameters that may change.
    ph = next(p for p in method.phases() if p.name == phase)
    in_optimizer = {id(p) for g in method.make_optimizer(ph).param_groups for p in g["params"]}
    trainable = {id(p) for p in method.parameters() if p.requires_grad}
    assert in_optimizer == trainable
    assert id(method.reid_head.bn.bias) not in trainable  # BNNeck keeps no shift
    assert all(id(p) not in trainable for p in method.image_encoder.visual.parameters())
    assert all(id(p) not in trainable for p in method.text_encoder.parameters())


def test_unfreeze_adds_named_encoder_parameters_in_phase_two(train_records, make_method, tiny_config, cpu_context,
                                                            first_batch):
    cfg = tiny_config()
    cfg.model.unfreeze = ["visual.ln_post", "visual.proj"]
    method = make_method(train_records, cfg)
    _one_step(method, "reid", cpu_context, first_batch)
    trained = {n for n, p in method.image_encoder.named_parameters() if p.requires_grad}
    assert {"visual.ln_post.weight", "visual.ln_post.bias", "visual.proj"} <= trained
    assert "visual.conv1.weight" not in trained


def test_phase_lists_follow_the_schedule_and_skip_empty_phases(train_records, make_method, tiny_config):
    assert [p.name for p in make_method(train_records).phases()] == ["prompt", "sr", "reid"]
    assert [p.name for p in make_method(train_records, tiny_config(schedule="joint")).phases()] == ["prompt", "joint"]
    cfg = tiny_config()
    cfg.phases.prompt.epochs = 0
    assert [p.name for p in make_method(train_records, cfg).phases()] == ["sr", "reid"]


def test_bicubic_sr_has_no_sr_phase(train_records, make_method, tiny_config):
    cfg = tiny_config()
    cfg.sr.model, cfg.sr.args = "bicubic", {}
    method = make_method(train_records, cfg)
    assert [p.name for p in method.phases()] == ["prompt", "reid"]


def test_prompt_tokens_learn_in_stage_zero_with_both_encoders_frozen(train_records, make_method, cpu_context):
    method = make_method(train_records)
    phase = method.phases()[0]
    assert phase.name == "prompt"
    method.train()
    method.apply_phase(phase)
    optimizer = method.make_optimizer(phase)
    dataset = method.train_dataset(phase)
    method.on_epoch_start(phase, 0, cpu_context())
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    def text_retrieval_accuracy() -> float:
        """How often a tracklet's most similar identity prompt is its own identity's."""
        text = torch.nn.functional.normalize(method.identity_text_features(), dim=1)
        feats = torch.nn.functional.normalize(method._prompt_features, dim=1)
        return float(((feats @ text.t()).argmax(1) == batch["pid"]).float().mean())

    accuracy_before = text_retrieval_accuracy()
    before_context = method.prompts.context.detach().clone()
    before_text = {k: v.clone() for k, v in method.text_encoder.state_dict().items()}
    before_image = {k: v.clone() for k, v in method.image_encoder.state_dict().items()}
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        out = method(batch, phase, 0)
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    assert losses[-1] < losses[0] - 0.3
    assert text_retrieval_accuracy() >= accuracy_before + 0.25
    assert not torch.allclose(method.prompts.context, before_context)
    assert all(torch.equal(v, before_text[k]) for k, v in method.text_encoder.state_dict().items())
    assert all(torch.equal(v, before_image[k]) for k, v in method.image_encoder.state_dict().items())


def test_tdp_in_the_joint_phase_trains_s_but_not_i(train_records, make_method, tiny_config, first_batch):
    """Even where I is trainable (joint schedule), L_TDP's gradient reaches S only."""
    cfg = tiny_config(schedule="joint", loss=dataclasses.replace(LossConfig(), pixel=0.0, temporal=0.0, tdp=1.0))
    method = make_method(train_records, cfg)
    phase = method.phases()[1]
    method.train()
    method.apply_phase(phase)
    batch = first_batch(method.train_dataset(phase))
    out = method._sr_losses(batch)
    out["loss"].backward()
    assert _grad_owners(method) == {"sr"}
    assert any(p.requires_grad for p in method.image_encoder.adapters.parameters())  # I could have learnt


def test_adaptive_scale_phase_trains_only_the_predictor_and_adds_an_evaluation_row(
        video_dataset, train_records, make_method, tiny_config, cpu_context, first_batch):
    from dataclasses import dataclass

    from lrreid.methods.s3clip.evaluate import evaluate_cross_view

    cfg = tiny_config()
    cfg.sr.model, cfg.sr.args = "bicubic", {}
    cfg.sr.adaptive_scales, cfg.sr.predictor_backbone, cfg.sr.predictor_feat_dim = [2, 4], "resnet10t", 16
    method = make_method(train_records, cfg)
    assert [p.name for p in method.phases()] == ["prompt", "reid", "scale"]
    out = _one_step(method, "scale", cpu_context, first_batch)
    assert _grad_owners(method) == {"scale_predictor"}
    assert 0.0 <= float(out["scale_agree"]) <= 1.0 and torch.isfinite(out["scale_ce"])

    @dataclass
    class Split:
        query: list
        gallery: list

    cfg.crossview.robustness, cfg.crossview.figure_tracklets = None, 0
    cfg.crossview.directions = [["aerial", "ground"]]
    method.eval()
    records = video_dataset.records  # evaluation keeps the dataset's person ids
    report = evaluate_cross_view(method, [Split([r for r in records if r.view == "aerial"],
                                                [r for r in records if r.view == "ground"])], cpu_context())
    assert "A->G S3-CLIP adaptive scale" in [r.name for r in report.rows]
    note = next(n for n in report.notes if n.startswith("adaptive scale"))
    counts = [int(part.split(": ")[1]) for part in note.split("factor ")[1].split(", ")]
    assert sum(counts) == sum(r.view == "aerial" for r in records)


def test_adaptive_scales_the_sr_model_cannot_do_are_refused(train_records, make_method, tiny_config):
    from lrreid.errors import ConfigError

    cfg = tiny_config()
    cfg.sr.adaptive_scales = [2, 3]  # the tiny SwinIR does x2 only
    with pytest.raises(ConfigError, match="x2 only"):
        make_method(train_records, cfg)


def test_phase_one_loss_is_the_weighted_sum_of_pixel_tdp_and_temporal(train_records, make_method, tiny_config,
                                                                      cpu_context, first_batch):
    """S's phase-1 objective is w_pixel L_pixel + w_tdp L_TDP + w_temporal L_temporal (Eq. of the paper):
    each term that is switched on reaches the total, and L_temporal's gradient reaches S."""
    cfg = tiny_config(loss=LossConfig(pixel=1.0, tdp=0.5, temporal=2.0))
    method = make_method(train_records, cfg)
    out = _one_step(method, "sr", cpu_context, first_batch)
    expected = out["pixel"] + 0.5 * out["tdp"] + 2.0 * out["temporal"]
    assert out["temporal"] > 0  # random S flickers between frames
    assert torch.allclose(out["loss"].detach(), expected, rtol=1e-5)

    # the same step with L_temporal's weight doubled changes S's gradient: the term is trained on
    grads = {}
    for w in (2.0, 4.0):
        method = make_method(train_records, tiny_config(loss=LossConfig(pixel=1.0, tdp=0.5, temporal=w)))
        _one_step(method, "sr", cpu_context, first_batch)
        grads[w] = torch.cat([p.grad.flatten() for p in method.sr.parameters() if p.grad is not None])
    assert not torch.allclose(grads[2.0], grads[4.0])
