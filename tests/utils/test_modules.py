"""eval_mode, the one save/restore of train/eval mode: what a training phase froze stays frozen."""
from torch import nn

from lrreid.utils.modules import eval_mode


def test_eval_mode_restores_each_sub_modules_own_mode():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout())
    net.train()
    net[1].eval()  # a frozen part, as Method.apply_phase leaves it
    with eval_mode(net) as inside:
        assert inside is net and not any(m.training for m in net.modules())
    assert [m.training for m in net.modules()] == [True, True, False, True]


def test_eval_mode_restores_after_an_error():
    net = nn.Linear(2, 2).train()
    try:
        with eval_mode(net):
            raise ValueError
    except ValueError:
        pass
    assert net.training
