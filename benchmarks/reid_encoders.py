"""Inference speed of the re-ID encoders: the PyTorch port (fp32, bf16) against the OpenVINO runtime.

One process, one batch of the same images, the same thread count for both runtimes; each figure
is the median of ``--repeats`` timed passes after a warm-up, in images per second, with the ratio
to the OpenVINO runtime measured in the same run (numbers on a shared machine move; ratios less).

    python benchmarks/reid_encoders.py                                   # the four OMZ files in ../shared
    python benchmarks/reid_encoders.py --weights path/to/model.xml --batch 32 --threads 1 --repeats 7

OpenVINO runs an IR as it is (batch 1 graphs are reshaped to the batch); the PyTorch rows run the
imported module in eval mode without gradients (bf16: CPU autocast).  Without ../shared and
without --weights it benchmarks a random x0.25 OMZ-style network converted here, so the script
always runs.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "weights" / "omz"


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def default_weights(tmp: Path) -> list[Path]:
    found = sorted(SHARED.glob("*/*/*.xml")) if SHARED.is_dir() else []
    if found:
        return found
    import openvino as ov

    from lrreid.models.reid.osnet_omz import OSNetOMZ

    xml = tmp / "random_osnet_omz_x0_25.xml"
    net = OSNetOMZ((16, 64, 96, 128)).eval()
    ov.save_model(ov.convert_model(net, example_input=torch.rand(1, 3, 256, 128), input=[1, 3, 256, 128]), str(xml))
    return [xml]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="*", type=Path, help="OpenVINO IR .xml files (default: ../shared's OMZ files)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="threads for torch and OpenVINO alike")
    args = parser.parse_args(argv)

    import openvino as ov

    from lrreid.models.reid.load import load_encoder
    from lrreid.utils.device import cpu_has_fast_bf16

    torch.set_num_threads(args.threads)
    core = ov.Core()
    rng = np.random.default_rng(0)
    rgb = rng.random((args.batch, 3, 256, 128), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        files = args.weights or default_weights(Path(tmp))
        print(f"batch {args.batch}, {args.threads} thread(s), median of {args.repeats}; bf16 fast on this CPU: {cpu_has_fast_bf16()}")
        print(f"| network | OpenVINO img/s | PyTorch fp32 img/s (x OV) | PyTorch bf16 img/s (x OV) | max 1-cos fp32 / bf16 |")
        print("|---|---:|---:|---:|---:|")
        for xml in files:
            net = load_encoder(xml).eval()
            spec = net.input_spec
            x = (torch.from_numpy(rgb) - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
            model = core.read_model(str(xml))
            model.reshape([args.batch, 3, *spec.size])
            compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": args.threads,
                                                         "INFERENCE_PRECISION_HINT": "f32"})
            bgr = np.ascontiguousarray(rgb[:, ::-1] * 255.0)
            ref = compiled(bgr)[0]
            t_ov = timed(lambda: compiled(bgr), args.repeats)
            with torch.inference_mode():
                out32 = net(x).numpy()
                t32 = timed(lambda: net(x), args.repeats)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out16 = net(x).float().numpy()
                    t16 = timed(lambda: net(x), args.repeats)

            def gap(a):
                return float(1 - ((a * ref).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(ref, axis=1)).min())

            n = args.batch
            print(f"| {xml.stem} | {n / t_ov:.1f} | {n / t32:.1f} ({t_ov / t32:.2f}x) | {n / t16:.1f} ({t_ov / t16:.2f}x) "
                  f"| {gap(out32):.1e} / {gap(out16):.1e} |")


if __name__ == "__main__":
    main()
