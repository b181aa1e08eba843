"""Cost of DDP's ``find_unused_parameters`` on a re-ID-sized step (2 gloo CPU processes by default).

The engine wraps each phase in DistributedDataParallel with ``find_unused_parameters`` taken from
the method (default False).  This measures what True costs: per step, DDP then walks the autograd
graph from the outputs to find parameters that got no gradient.

    python benchmarks/engine_ddp.py                       # resnet18, 2 processes, CPU
    python benchmarks/engine_ddp.py --nproc 2 --steps 30 --batch 16 --size 128 64

Prints the median step time for False and True.  With a trainable parameter that really gets no
gradient, False raises at the next step ("Expected to have finished reduction..."); the script
checks that too (``--check-unused``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


class Net(nn.Module):
    def __init__(self, unused_branch: bool):
        super().__init__()
        import torchvision

        self.backbone = torchvision.models.resnet18(num_classes=64)
        self.spare = nn.Linear(64, 64) if unused_branch else None

    def forward(self, x):
        return self.backbone(x)


def worker(rank: int, world: int, args, port: int, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    x = torch.randn(args.batch // world, 3, *args.size)
    y = torch.randint(0, 64, (args.batch // world,))
    for find_unused in (False, True):
        model = nn.parallel.DistributedDataParallel(Net(args.check_unused), find_unused_parameters=find_unused)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        times = []
        try:
            for step in range(args.steps + 3):
                t0 = time.perf_counter()
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step >= 3:  # warm-up steps excluded
                    times.append(time.perf_counter() - t0)
            if rank == 0:
                results[find_unused] = statistics.median(times)
        except RuntimeError as exc:
            if rank == 0:
                results[find_unused] = f"error: {str(exc).splitlines()[0][:100]}"
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16, help="global batch")
    ap.add_argument("--size", type=int, nargs=2, default=(128, 64))
    ap.add_argument("--check-unused", action="store_true", help="add a trainable layer that gets no gradient")
    args = ap.parse_args()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(args.nproc, args, port, results), nprocs=args.nproc)
        for key in (False, True):
            value = results.get(key)
            shown = f"{value * 1000:.1f} ms/step" if isinstance(value, float) else value
            print(f"find_unused_parameters={key}: {shown}")


if __name__ == "__main__":
    main()
