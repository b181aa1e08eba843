"""Benchmark: the fast inference path of an LR re-ID pipeline against plain fp32, one image at a time.

Three throughputs (images per second), all in one run on the same synthetic-dataset images, the
decoded images held in memory (decoding is not timed):

  (a) the re-ID network alone on HR gallery crops (fast path, batched);
  (b) the full PRI pipeline on LR probes: predict the scale, super-resolve at it (probes grouped
      by scale and size), embed -- fast path (channels_last, bf16 autocast on CPUs with
      AVX512-BF16/AMX, fp16 on CUDA), batched;
  (c) the same pipeline in plain fp32, one image at a time.

Accuracy: Rank-1 and mAP of (b) against the fp32 pipeline on the same probes and gallery
(query = far-camera LR images, gallery = near-camera HR images of the synthetic dataset).  With
``--run`` the model is a trained run; otherwise the networks have random weights (said in the
output), which still measures how far bf16 moves the ranking.

Targets (docs/search.md): (b) >= 5x (c); (b) >= 0.4x (a); |Rank-1| and |mAP| of (b) within 0.5
points of fp32.  Times are medians of ``--repeats`` runs.

    python benchmarks/inference.py                      # CPU-sized random networks
    python benchmarks/inference.py --preset resnet50    # the paper's sizes (slow on CPU)
    python benchmarks/inference.py --run runs/demo      # a trained run
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from lrreid.data.datasets import build_dataset
from lrreid.evaluation.metrics import evaluate_features
from lrreid.inference.pipeline import LRReIDPipeline, load_images
from lrreid.utils.device import Precision, cpu_has_fast_bf16

PRESETS = {
    # A CPU-sized PRI: ResNet-18 for F and P, a small Meta-RDN.
    "cpu": {"backbone": "resnet18", "input_size": (256, 128), "feat_dim": 512, "predictor_feat_dim": 256,
            "sr": "metasr_rdn", "sr_args": {"G0": 32, "D": 4, "C": 4, "G": 16}},
    # The paper's networks (Sec. 4.1): ResNet-50 at 384x128, the released Meta-RDN.
    "resnet50": {"backbone": "resnet50", "input_size": (384, 128), "feat_dim": 512, "predictor_feat_dim": 512,
                 "sr": "metasr_rdn", "sr_args": {"G0": 64, "D": 16, "C": 8, "G": 64}},
}


def random_networks(preset: dict, scales=(1, 2, 3, 4), seed: int = 0):
    from lrreid.models.predictor import ScalePredictor
    from lrreid.models.reid import ReIDNet
    from lrreid.models.sr import build_sr_model

    torch.manual_seed(seed)
    reid = ReIDNet(preset["backbone"], num_classes=100, feat_dim=preset["feat_dim"])
    predictor = ScalePredictor(preset["backbone"], num_scales=len(scales), feat_dim=preset["predictor_feat_dim"])
    torch.nn.init.normal_(predictor.fc.weight, std=0.5)  # random choices instead of the uniform init
    sr = build_sr_model(preset["sr"], **preset["sr_args"])
    return reid.eval(), sr.eval(), predictor.eval()


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: oneDNN kernel selection, caches
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def ranking(pipe: LRReIDPipeline, probes, gallery, p_imgs, g_imgs) -> tuple[float, float]:
    qf = pipe.embed_probes(p_imgs).features
    gf = pipe.embed_gallery(g_imgs)
    res = evaluate_features(qf, gf, [r.pid for r in probes], [r.pid for r in gallery],
                            [r.camid for r in probes], [r.camid for r in gallery], max_rank=10)
    return 100 * res.rank(1), 100 * res.mAP


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--run", help="trained run folder or checkpoint (default: random weights)")
    ap.add_argument("--num-ids", type=int, default=24, help="synthetic identities (probes = 2 per id)")
    ap.add_argument("--slow-images", type=int, default=16, help="images timed one at a time in (c)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sr-precision", choices=["fast", "fp32", "both"], default="both",
                    help="the SR network's precision on the fast path (both: measure and report both)")
    ap.add_argument("--cache-dir", default=None, help="where the synthetic images are written")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()

    ds = build_dataset("synthetic", num_ids=args.num_ids, images_per_camera=2, cache_dir=args.cache_dir)
    gallery = [r for r in ds.records if r.camid == 0]
    probes = [r for r in ds.records if r.camid == 1]
    g_imgs = load_images([r.path for r in gallery])
    p_imgs = load_images([r.path for r in probes])

    fast = Precision.for_inference("auto", fast=True)
    fp32 = Precision.for_inference(fast.device, fast=False)
    if args.run:
        from lrreid.inference.loading import load_pipeline

        base = load_pipeline(args.run, fast=False)
        reid, sr, predictor = base.reid_net, base.sr_net, base.predictor
        scales, input_size = base.scales, base.input_size
        what = f"trained run {args.run}"
    else:
        preset = PRESETS[args.preset]
        reid, sr, predictor = random_networks(preset)
        scales, input_size = (1, 2, 3, 4), preset["input_size"]
        what = (f"RANDOM weights, preset {args.preset}: {preset['backbone']} F and P at "
                f"{input_size[0]}x{input_size[1]}, {preset['sr']} {preset['sr_args']}")

    def pipeline(precision, sr_precision=None, batch_size=args.batch_size):
        return LRReIDPipeline(reid, sr, predictor, scales=scales, input_size=input_size, precision=precision,
                              sr_precision=sr_precision, batch_size=batch_size)

    print(f"model: {what}")
    print(f"device {fast.device}, fast path {fast.mode}{' + channels_last' if fast.channels_last else ''} "
          f"(CPU bf16 support: {cpu_has_fast_bf16()}), {torch.get_num_threads()} threads, "
          f"{len(p_imgs)} probes / {len(g_imgs)} gallery images, median of {args.repeats}")

    results = {"model": what, "device": str(fast.device), "fast_mode": fast.mode, "threads": torch.get_num_threads()}
    # (c) first: the plain reference, one image at a time, fp32.
    slow = pipeline(fp32, batch_size=1)
    subset = p_imgs[: args.slow_images]
    t_c = timed(lambda: [slow.embed_probes([im]) for im in subset], max(1, args.repeats))
    ips_c = len(subset) / statistics.median(t_c)
    rank_fp32 = ranking(pipeline(fp32), probes, gallery, p_imgs, g_imgs)

    variants = {"fast": None, "fp32": fp32} if args.sr_precision == "both" else (
        {"fast": None} if args.sr_precision == "fast" else {"fp32": fp32})
    rows = []
    for name, sr_prec in variants.items():
        pipe = pipeline(fast, sr_prec)
        t_a = timed(lambda: pipe.embed_gallery(g_imgs), args.repeats)
        t_b = timed(lambda: pipe.embed_probes(p_imgs), args.repeats)
        ips_a = len(g_imgs) / statistics.median(t_a)
        ips_b = len(p_imgs) / statistics.median(t_b)
        r1, m = ranking(pipe, probes, gallery, p_imgs, g_imgs)
        rows.append({"sr_precision": name if name == "fp32" else fast.mode, "a_reid_ips": ips_a, "b_pipeline_ips": ips_b,
                     "c_fp32_single_ips": ips_c, "rank1": r1, "mAP": m,
                     "rank1_fp32": rank_fp32[0], "mAP_fp32": rank_fp32[1]})

    print(f"\n(c) plain fp32, one image at a time: {ips_c:8.1f} img/s  ({len(subset)} probes)")
    print(f"fp32 pipeline ranking: Rank-1 {rank_fp32[0]:.2f}  mAP {rank_fp32[1]:.2f}")
    ok_all = True
    for row in rows:
        print(f"\nfast path, SR in {row['sr_precision']}:")
        print(f"  (a) re-ID alone on HR crops:      {row['a_reid_ips']:8.1f} img/s")
        print(f"  (b) full pipeline (P, SR, F):      {row['b_pipeline_ips']:8.1f} img/s")
        d_r1, d_map = row["rank1"] - rank_fp32[0], row["mAP"] - rank_fp32[1]
        print(f"  ranking: Rank-1 {row['rank1']:.2f} ({d_r1:+.2f})  mAP {row['mAP']:.2f} ({d_map:+.2f})")
        checks = [
            ("(b) >= 5x (c)", row["b_pipeline_ips"] >= 5 * ips_c, f"{row['b_pipeline_ips'] / ips_c:.1f}x"),
            ("(b) >= 0.4x (a)", row["b_pipeline_ips"] >= 0.4 * row["a_reid_ips"],
             f"{row['b_pipeline_ips'] / row['a_reid_ips']:.2f}x"),
            ("Rank-1 within 0.5 of fp32", abs(d_r1) <= 0.5, f"{d_r1:+.2f}"),
            ("mAP within 0.5 of fp32", abs(d_map) <= 0.5, f"{d_map:+.2f}"),
        ]
        for name, ok, value in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {name}: {value}")
            ok_all &= ok
        row["pass"] = {name: bool(ok) for name, ok, _ in checks}
    results["rows"] = rows
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
