"""Per-frame super-resolution time of S3-CLIP's SR network (SwinIR-S x2 by default).

S3-CLIP super-resolves every frame of every low-resolution tracklet before the re-ID encoder, so
the SR cost per frame decides how long evaluation (and phase-2 training) takes.  This times the
network in eval mode without gradients on batches of frames and prints the median per frame.

    python benchmarks/sr_speed.py                                  # swinir_s, 64x32 and 128x64 input, CPU
    python benchmarks/sr_speed.py --sizes 64x32 128x64 --batch 8 --repeats 7 --threads 2
    python benchmarks/sr_speed.py --device cuda --precision fp16 --batch 64

Sizes are LR input ``HxW``; the x2 output of 128x64 is the paper's 256x128 encoder input.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from lrreid.models.sr import build_sr_model
from lrreid.utils.device import Precision, resolve_device


def time_per_frame(model, size: tuple[int, int], batch: int, repeats: int, scale: float,
                   precision: Precision) -> list[float]:
    """Seconds per frame of each timed repeat (after one warm-up pass)."""
    x = precision.prepare_input(torch.rand(batch, 3, *size))
    times = []
    with torch.no_grad(), precision.autocast():
        model(x, scale)  # warm-up: allocations, cached attention masks for this size
        for _ in range(repeats):
            if precision.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x, scale)
            if precision.device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) / batch)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="swinir_s")
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--sizes", nargs="+", default=["64x32", "128x64"], help="LR input sizes HxW")
    parser.add_argument("--batch", type=int, default=8, help="frames per forward pass")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = Precision(device, args.precision)
    model = precision.prepare_model(build_sr_model(args.model).eval())
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {params / 1e6:.2f}M parameters, x{args.scale:g}, {device}, {args.precision}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}, median of {args.repeats}")
    print(f"{'LR input':>10} {'SR output':>10} {'ms/frame':>9} {'min':>7} {'max':>7}")
    for text in args.sizes:
        h, w = (int(v) for v in text.lower().split("x"))
        times = time_per_frame(model, (h, w), args.batch, args.repeats, args.scale, precision)
        out = f"{round(h * args.scale)}x{round(w * args.scale)}"
        print(f"{text:>10} {out:>10} {1000 * statistics.median(times):9.1f} "
              f"{1000 * min(times):7.1f} {1000 * max(times):7.1f}")


if __name__ == "__main__":
    main()
