"""The Method defaults the engine relies on, and EvalReport's table/Markdown/JSON forms."""
import pytest
import torch
from torch import nn

from lrreid.methods import EvalReport, Method, Phase


class TwoPart(Method):
    name = "two_part"

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.head = nn.Linear(4, 2)


def test_apply_phase_freezes_other_modules_and_puts_them_in_eval_mode():
    m = TwoPart()
    m.train()
    m.apply_phase(Phase("head_only", 1, ("head",)))
    assert all(not p.requires_grad for p in m.backbone.parameters())
    assert all(p.requires_grad for p in m.head.parameters())
    assert not m.backbone.training and m.head.training  # frozen BatchNorm keeps its statistics
    m.train()
    m.apply_phase(Phase("all", 1, ("backbone", "head"), frozen_eval=False))
    assert all(p.requires_grad for p in m.parameters()) and m.backbone.training


def test_default_param_groups_and_optimizer():
    m = TwoPart()
    phase = Phase("head_only", 1, ["head"])
    assert phase.trainable == ("head",)  # lists from configs become tuples
    m.apply_phase(phase)
    groups = m.param_groups(phase)
    assert [g["name"] for g in groups] == ["head"] and groups[0]["lr"] == m.lr
    opt = m.make_optimizer(phase)
    assert isinstance(opt, torch.optim.Adam) and sum(len(g["params"]) for g in opt.param_groups) == 2
    assert m.make_scheduler(phase, opt) is None
    with pytest.raises(ValueError, match="no sub-module 'neck'"):
        m.param_groups(Phase("x", 1, ("neck",)))


def test_forward_is_the_training_step():
    class Echo(TwoPart):
        def training_step(self, batch, phase, epoch):
            return {"loss": self.head(batch["x"]).sum(), "epoch": torch.tensor(float(epoch))}

    out = Echo()({"x": torch.ones(2, 4)}, Phase("p", 1, ("head",)), 3)
    assert set(out) == {"loss", "epoch"} and out["epoch"].item() == 3.0


def test_eval_report_markdown_table_and_json_round_trip():
    report = EvalReport("CAVIAR, 2 splits", notes=["predicted scales: x2 40%"])
    report.add("x2", {"rank1": 0.41, "mAP": 0.5234}, std={"rank1": 0.031})
    report.add("predicted", {"rank1": 0.5})
    md = report.to_markdown()
    assert "| | rank1 (%) | mAP (%) |" in md.replace("|  |", "| |")
    assert "| x2 | 41.0 ± 3.1 | 52.3 |" in md
    assert "| predicted | 50.0 | - |" in md
    assert md.rstrip().endswith("predicted scales: x2 40%")
    again = EvalReport.from_dict(report.to_dict())
    assert again.to_markdown() == md
    table = report.to_table()
    assert table.row_count == 2 and len(table.columns) == 3
    raw = EvalReport("raw", percent=False)
    raw.add("psnr", {"dB": 31.92})
    assert "| psnr | 31.92 |" in raw.to_markdown()
