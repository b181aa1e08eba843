"""Small helpers on ``nn.Module``s that every room uses."""
from __future__ import annotations

from torch import nn


class eval_mode:
    """Context manager: ``module`` in eval mode inside the block; afterwards every sub-module gets its
    own earlier mode back (a training phase's frozen parts stay in eval mode).

    Example::

        with eval_mode(method), torch.no_grad():
            report = method.evaluate(splits, ctx)
    """

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self) -> nn.Module:
        self.modes = [(m, m.training) for m in self.module.modules()]
        self.module.eval()
        return self.module

    def __exit__(self, *exc) -> bool:
        for m, mode in self.modes:
            m.training = mode
        return False
