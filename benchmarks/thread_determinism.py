"""Does one PRI training step give the same gradients on every CPU thread count?  (It does not.)

One joint step of the tiny test PRI (tests/methods/pri/conftest.py) with 1, 2, 3, 4 and 8 torch
threads; prints whether each gradient equals the 1-thread one bitwise, and the largest difference.
Why `lrreid demo` pins torch to one thread (docs/pri.md, "The demo and the pictures").

    python benchmarks/thread_determinism.py
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "methods" / "pri"))
from conftest import ctx, make_batch, make_tiny_pri  # noqa: E402


def gradients(threads: int) -> torch.Tensor:
    torch.set_num_threads(threads)
    m = make_tiny_pri()
    joint = m.phases()[1]
    m.train()
    m.apply_phase(joint)
    m.on_epoch_start(joint, 0, ctx())
    torch.manual_seed(0)
    m(make_batch(batch_size=8), joint, 0)["loss"].backward()
    return torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])


if __name__ == "__main__":
    ref = gradients(1)
    for n in (2, 3, 4, 8):
        g = gradients(n)
        print(f"{n} threads: identical to 1 thread: {torch.equal(ref, g)}; max |difference| {(ref - g).abs().max().item():.3g}")
