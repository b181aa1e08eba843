"""PRI's training step: which losses run in which phase, and what each loss is allowed to train."""
from __future__ import annotations

import pytest
import torch

from lrreid.methods.pri.config import PRILossConfig, PRIScheduleConfig


def _start(method, phase, epoch, ctx):
    method.train()
    method.apply_phase(phase)
    method.on_epoch_start(phase, epoch, ctx)


def _grads(module):
    return [p.grad for p in module.parameters()]


def _nonzero(grads):
    return any(g is not None and g.abs().sum() > 0 for g in grads)


def test_phases_follow_the_schedule(tiny_pri):
    m = tiny_pri(schedule=PRIScheduleConfig(pretrain_epochs=2, joint_epochs=3))
    assert [(p.name, p.epochs, p.trainable) for p in m.phases()] == [
        ("pretrain", 2, ("sr_net", "reid_net")), ("joint", 3, ("sr_net", "reid_net", "scale_predictor"))]
    # the ablations: no pre-training, only pre-training
    assert [p.name for p in tiny_pri(schedule=PRIScheduleConfig(pretrain_epochs=0, joint_epochs=3)).phases()] == ["joint"]
    assert [p.name for p in tiny_pri(schedule=PRIScheduleConfig(pretrain_epochs=2, joint_epochs=0)).phases()] == ["pretrain"]


def test_pretraining_has_no_prediction_loss_and_never_runs_p(tiny_pri, batch, epoch_ctx):
    m = tiny_pri()
    pretrain = m.phases()[0]
    calls = []
    m.scale_predictor.register_forward_hook(lambda *a: calls.append(1))
    _start(m, pretrain, 0, epoch_ctx())
    out = m(batch(), pretrain, 0)
    assert "p" not in out and {"loss", "sr", "id", "tri"} <= set(out)
    out["loss"].backward()
    assert calls == []
    assert all(g is None for g in _grads(m.scale_predictor))
    assert _nonzero(_grads(m.sr_net)) and _nonzero(_grads(m.reid_net))
    assert not m.soft_labels.measured.any()


def test_prediction_loss_trains_only_the_predictor(tiny_pri, batch, epoch_ctx):
    # L = L_p alone: G and F must get no gradient at all.
    m = tiny_pri(loss=PRILossConfig(sr_weight=0, alpha=0, beta=0, lambda_p=1))
    joint = m.phases()[1]
    _start(m, joint, 0, epoch_ctx())
    out = m(batch(), joint, 0)
    out["loss"].backward()
    assert out["loss"].item() == pytest.approx(out["p"].item())
    assert _nonzero(_grads(m.scale_predictor))
    assert not _nonzero(_grads(m.sr_net)) and not _nonzero(_grads(m.reid_net))


def test_other_losses_never_train_the_predictor(tiny_pri, batch, epoch_ctx):
    m = tiny_pri(loss=PRILossConfig(lambda_p=0))
    joint = m.phases()[1]
    _start(m, joint, 0, epoch_ctx())
    m(batch(), joint, 0)["loss"].backward()
    assert not _nonzero(_grads(m.scale_predictor))  # argmax P(x_l) is not differentiable
    assert _nonzero(_grads(m.sr_net)) and _nonzero(_grads(m.reid_net))


def test_joint_step_total_is_the_weighted_sum(tiny_pri, batch, epoch_ctx):
    cfg = PRILossConfig(sr_weight=1.0, alpha=0.5, beta=0.01, lambda_p=2.0)
    m = tiny_pri(loss=cfg)
    joint = m.phases()[1]
    _start(m, joint, 0, epoch_ctx())
    out = m(batch(), joint, 0)
    expected = out["sr"] + 0.5 * out["id"] + 0.01 * out["tri"] + 2.0 * out["p"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert 1.0 <= out["pred_scale"].item() <= 4.0


def test_soft_labels_are_measured_on_refresh_epochs_only(tiny_pri, batch, epoch_ctx):
    m = tiny_pri(loss=PRILossConfig(omega=2))
    joint = m.phases()[1]
    b = batch()
    _start(m, joint, 0, epoch_ctx())            # epoch 0: refresh
    m(b, joint, 0)
    assert m.soft_labels.measured[:8].all() and not m.soft_labels.measured[8:].any()
    first = m.soft_labels.labels[:8].clone()
    torch.testing.assert_close(first.sum(1), torch.ones(8))

    with torch.no_grad():                       # change F so that a re-measurement would differ
        for p in m.reid_net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _start(m, joint, 1, epoch_ctx())            # epoch 1: no refresh, labels kept
    m(b, joint, 1)
    torch.testing.assert_close(m.soft_labels.labels[:8], first)

    _start(m, joint, 2, epoch_ctx())            # epoch 2: refresh again
    m(b, joint, 2)
    assert not torch.allclose(m.soft_labels.labels[:8], first)


def test_images_never_measured_are_measured_when_first_seen(tiny_pri, batch, epoch_ctx):
    m = tiny_pri(loss=PRILossConfig(omega=5))
    joint = m.phases()[1]
    _start(m, joint, 1, epoch_ctx())            # not a refresh epoch
    m(batch(start=8), joint, 1)
    assert m.soft_labels.measured[8:].all() and not m.soft_labels.measured[:8].any()
    # the label_best statistic says how many labels it is a share of
    stats = m.on_epoch_end(joint, 1, epoch_ctx())
    assert stats["label_best_n"] == int(m.soft_labels.measured.sum()) and 0 <= stats["label_best"] <= 1
    _start(m, joint, 2, epoch_ctx())            # nothing new measured: no share of nothing
    m(batch(start=8), joint, 2)
    assert "label_best" not in m.on_epoch_end(joint, 2, epoch_ctx())


def test_one_hot_ablation_targets(tiny_pri, batch, epoch_ctx):
    from lrreid import losses
    from lrreid.methods.pri.soft_labels import one_hot_labels

    m = tiny_pri(loss=PRILossConfig(soft_labels=False, sr_weight=0, alpha=0, beta=0))
    joint = m.phases()[1]
    _start(m, joint, 0, epoch_ctx())
    b = batch()
    out = m(b, joint, 0)
    m.eval()
    with torch.no_grad():
        m.scale_predictor.train()  # the step ran P in training mode
        logits = m.scale_predictor(m.net_input(b["x_l"]))
    target = one_hot_labels(m.soft_labels.labels[:8])
    assert out["p"].item() == pytest.approx(losses.soft_cross_entropy(logits, target).item(), rel=1e-4)


def test_scale_one_is_the_identity_for_sr_nets_without_it(tiny_pri, batch, epoch_ctx):
    m = tiny_pri(sr="carn_m")
    x = torch.rand(2, 3, 8, 4)
    assert m.super_resolve(x, 1) is x
    assert m.super_resolve(x, 3).shape == (2, 3, 24, 12)
    joint = m.phases()[1]
    _start(m, joint, 0, epoch_ctx())
    assert torch.isfinite(m(batch(), joint, 0)["loss"])


def test_scale_the_sr_net_cannot_do_is_a_config_error(tiny_pri):
    from lrreid.errors import ConfigError

    with pytest.raises(ConfigError, match="carn_m"):
        tiny_pri(sr="carn_m", scales=(1, 2, 5))


def test_lr_images_of_their_own_sizes_go_through_g_unpadded(tiny_pri, batch, epoch_ctx):
    """triplets.lr_size=native: a padded batch with lr_hw gives what each image gives alone."""
    m = tiny_pri().eval()
    g = torch.Generator().manual_seed(0)
    sizes = [(8, 4), (6, 3), (8, 4), (5, 2)]
    images = [torch.rand(3, h, w, generator=g) for h, w in sizes]
    padded = torch.zeros(4, 3, 8, 4)
    for i, img in enumerate(images):
        padded[i, :, :img.shape[1], :img.shape[2]] = img
    lr_hw = torch.tensor(sizes)
    for scale in (None, 1, 3):
        got = m.lr_net_inputs(padded, lr_hw, scale)
        for i, img in enumerate(images):
            alone = m.net_input(img[None] if scale is None else m.super_resolve(img[None], scale))
            torch.testing.assert_close(got[i:i + 1], alone, rtol=1e-5, atol=1e-5)
    # and a joint training step with such a batch trains G, F and P
    m = tiny_pri()
    joint = m.phases()[1]
    _start(m, joint, 0, epoch_ctx())
    b = batch(batch_size=4)
    b["x_l"], b["lr_hw"] = padded, lr_hw
    out = m(b, joint, 0)
    out["loss"].backward()
    assert m.soft_labels.measured[:4].all()
    assert _nonzero(_grads(m.sr_net)) and _nonzero(_grads(m.reid_net)) and _nonzero(_grads(m.scale_predictor))


def test_finetune_baseline_trains_f_alone_on_lr_and_hr_images(tiny_pri, batch, epoch_ctx):
    """schedule.mode=finetune: "fine-tuned, no SR" -- one phase, F only, identity + triplet, G and P never run."""
    m = tiny_pri(schedule=PRIScheduleConfig(pretrain_epochs=2, joint_epochs=3, mode="finetune"),
                 loss=PRILossConfig(beta=0.5))
    assert [(p.name, p.epochs, p.trainable) for p in m.phases()] == [("finetune", 5, ("reid_net",))]
    phase = m.phases()[0]
    calls = []
    m.sr_net.register_forward_hook(lambda *a: calls.append("G"))
    m.scale_predictor.register_forward_hook(lambda *a: calls.append("P"))
    _start(m, phase, 0, epoch_ctx())
    out = m(batch(), phase, 0)
    assert out["loss"].item() == pytest.approx(out["id"].item() + 0.5 * out["tri"].item())
    out["loss"].backward()
    assert calls == []
    assert _nonzero(_grads(m.reid_net))
    assert [g["name"] for g in m.param_groups(phase)] == ["reid_net.backbone", "reid_net.head"]
    assert m.on_epoch_end(phase, 0, epoch_ctx()) is None
    assert [p.epochs for p in tiny_pri(schedule=PRIScheduleConfig(mode="finetune", finetune_epochs=7)).phases()] == [7]


def test_remeasuring_step_keeps_a_graph_of_the_chosen_scale_only(tiny_pri, batch, epoch_ctx):
    """Issue 12: the soft labels need G at every scale but no gradient; only x_rp = G_{r_p}(x_l) and
    G(x_sl) go through G with a graph (they used to keep G's graph at every scale of the whole batch),
    and the step computes the same losses as a step that does not re-measure."""
    m = tiny_pri(loss=PRILossConfig(omega=2))
    joint = m.phases()[1]
    b = batch()
    rows_with_graph = []
    m.sr_net.register_forward_hook(lambda mod, args, out: rows_with_graph.append(len(args[0])) if out.requires_grad else None)
    _start(m, joint, 0, epoch_ctx())            # epoch 0: re-measures
    torch.manual_seed(5)
    measured = m(b, joint, 0)
    assert m.soft_labels.measured[:8].all()
    assert sum(rows_with_graph) == 2 * len(b["x_l"])   # x_sl, and each x_l once at its predicted scale
    _start(m, joint, 1, epoch_ctx())            # epoch 1: labels known, same weights
    torch.manual_seed(5)
    plain = m(b, joint, 1)
    for k in ("loss", "sr", "id", "tri", "p"):
        torch.testing.assert_close(measured[k], plain[k], rtol=1e-5, atol=1e-6)


def test_sr_degradation_changes_what_g_learns_from(tiny_pri, batch, epoch_ctx):
    """loss.sr_degradation: G's L_sr input x_sl is the bicubic copy of x_h, then degraded per image
    (seeded by torch's generator, so a resumed run draws the same); "bicubic" leaves it untouched."""
    from lrreid.data.degradations import bicubic_downsample
    from lrreid.methods.pri.model import degrade_batch

    seen = {}
    for spec in ("bicubic", "blur+noise+jpeg"):
        m = tiny_pri(loss=PRILossConfig(sr_degradation=spec))
        pretrain = m.phases()[0]
        inputs = []
        m.sr_net.register_forward_hook(lambda mod, args, out: inputs.append(args[0].detach().clone()))
        _start(m, pretrain, 0, epoch_ctx())
        b = batch()
        torch.manual_seed(3)
        m(b, pretrain, 0)
        seen[spec] = inputs[0]
        r_sl = round(b["x_h"].shape[-2] / inputs[0].shape[-2])
    clean = bicubic_downsample(b["x_h"], r_sl)
    assert torch.allclose(seen["bicubic"], clean)
    assert seen["blur+noise+jpeg"].shape == clean.shape
    assert (seen["blur+noise+jpeg"] - clean).abs().mean() > 0.01
    one = degrade_batch(clean, "blur+noise+jpeg", seed=5)
    assert torch.equal(one, degrade_batch(clean, "blur+noise+jpeg", seed=5))
    assert not torch.equal(one, degrade_batch(clean, "blur+noise+jpeg", seed=6))
    with pytest.raises(ValueError, match="loss.sr_degradation: .*unknown degradation 'smear'"):
        PRILossConfig(sr_degradation="smear")
