"""Benchmark: the fast inference path of an LR re-ID pipeline against plain fp32, one image at a time.

Three throughputs (images per second), all in one run on the same synthetic-dataset images, the
decoded images held in memory (decoding is not timed):

  (a) the re-ID network alone on HR gallery crops (fast path, batched);
  (b) the full PRI pipeline on LR probes: predict the scale, super-resolve at it, embed -- fast
      path (channels_last, bf16 autocast on CPUs with AVX512-BF16/AMX, fp16 on CUDA, BatchNorm
      folded, probes batched by scale on SR canvases of sizes rounded up to 8 px), batched;
      with ``--time-exact-sizes`` also timed with SR batched by exact probe size
      (``sr_size_multiple=1``, the batching before SR canvases), for comparison;
  (c) the same pipeline in plain fp32, one image at a time (SR at each probe's own size).

Accuracy: Rank-1 and mAP of (b) against the fp32 pipeline on the same probes and gallery
(query = far-camera LR images, gallery = near-camera HR images of the synthetic dataset).  With
``--run`` the model is a trained run; otherwise the networks have random weights (said in the
output), which still measures how far bf16 moves the ranking.

Targets (docs/search.md): (b) >= 5x (c); (b) >= 0.4x (a); |Rank-1| and |mAP| of (b) within 0.5
points of fp32.  Times are medians of ``--repeats`` rounds in which (a), (b) and (c) take turns
(so that load from other processes falls on all three alike).  Besides wall-clock throughput it
prints throughput in this thread's CPU time (``time.thread_time``): with one torch thread that is
the work each path does, which other processes on a shared machine do not inflate.

    python benchmarks/inference.py                      # lrreid demo's network sizes, random weights
    python benchmarks/inference.py --preset cpu         # ResNet-18 F and P at 256x128
    python benchmarks/inference.py --preset resnet50    # the paper's sizes (slow on CPU)
    python benchmarks/inference.py --run runs/demo      # a trained run (lrreid demo)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from lrreid.data.datasets import build_dataset
from lrreid.evaluation.metrics import evaluate_features
from lrreid.inference.pipeline import LRReIDPipeline, load_images
from lrreid.utils.atomic import atomic_write_json
from lrreid.utils.device import Precision, configure_threads, cpu_has_fast_bf16

PRESETS = {
    # A mid-sized CPU PRI: ResNet-18 for F and P at 256x128, a small Meta-RDN.
    "cpu": {"backbone": "resnet18", "predictor_backbone": "resnet18", "input_size": (256, 128), "feat_dim": 512,
            "predictor_feat_dim": 256, "sr": "metasr_rdn", "sr_args": {"G0": 32, "D": 4, "C": 4, "G": 16}},
    # The paper's networks (Sec. 4.1): ResNet-50 for F and P at 384x128, the released Meta-RDN.
    "resnet50": {"backbone": "resnet50", "predictor_backbone": "resnet50", "input_size": (384, 128), "feat_dim": 512,
                 "predictor_feat_dim": 512, "sr": "metasr_rdn", "sr_args": {"G0": 64, "D": 16, "C": 8, "G": 64}},
}


def preset_from_config(path: str) -> dict:
    """Network sizes of a PRI run config (``model`` section and ``data.input_size``)."""
    from lrreid.config import load_config

    cfg = load_config(path)
    m = cfg.model
    return {"backbone": m.backbone, "predictor_backbone": m.predictor_backbone or m.backbone,
            "input_size": tuple(cfg.data.input_size), "feat_dim": m.feat_dim,
            "predictor_feat_dim": m.predictor_feat_dim, "sr": m.sr, "sr_args": dict(m.sr_args)}


def demo_config() -> str:
    """The config ``lrreid demo`` trains (the CPU-sized PRI shipped with lrreid)."""
    from importlib import resources

    return str(resources.files("lrreid").joinpath("configs/demo.yaml"))


def random_networks(preset: dict, scales=(1, 2, 3, 4), seed: int = 0):
    from lrreid.models.predictor import ScalePredictor
    from lrreid.models.reid import ReIDNet
    from lrreid.models.sr import build_sr_model

    torch.manual_seed(seed)
    reid = ReIDNet(preset["backbone"], num_classes=100, feat_dim=preset["feat_dim"])
    predictor = ScalePredictor(preset["predictor_backbone"], num_scales=len(scales), feat_dim=preset["predictor_feat_dim"])
    torch.nn.init.normal_(predictor.fc.weight, std=0.5)  # random choices instead of the uniform init
    sr = build_sr_model(preset["sr"], **preset["sr_args"])
    return reid.eval(), sr.eval(), predictor.eval()


def ranking(pipe: LRReIDPipeline, probes, gallery, p_imgs, g_imgs) -> tuple[float, float]:
    qf = pipe.embed_probes(p_imgs).features
    gf = pipe.embed_gallery(g_imgs)
    res = evaluate_features(qf, gf, [r.pid for r in probes], [r.pid for r in gallery],
                            [r.camid for r in probes], [r.camid for r in gallery], max_rank=10)
    return 100 * res.rank(1), 100 * res.mAP


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), help="built-in sizes instead of --config")
    ap.add_argument("--config", help="network sizes from this PRI run config (default: lrreid demo's config)")
    ap.add_argument("--run", help="trained run folder or checkpoint (default: random weights)")
    ap.add_argument("--num-ids", type=int, default=100, help="synthetic identities (probes and gallery: 2 per id)")
    ap.add_argument("--slow-images", type=int, default=0, help="probes timed one at a time in (c) (0: all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sr-precision", choices=["fast", "fp32", "both"], default="both",
                    help="the SR network's precision on the fast path (both: measure and report both)")
    ap.add_argument("--cache-dir", default=None, help="where the synthetic images are written")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads; 0: all cores, or 1 when the machine is already busy (load >= cores)")
    ap.add_argument("--time-exact-sizes", action="store_true",
                    help="also time the fast path with SR batched by exact probe size instead of canvases")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()
    configure_threads(args.threads)  # auto: 1 thread when the machine is already busy

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
        source = f"preset {args.preset}" if args.preset else f"config {args.config or 'lrreid demo'}"
        preset = PRESETS[args.preset] if args.preset else preset_from_config(args.config or demo_config())
        reid, sr, predictor = random_networks(preset)
        scales, input_size = (1, 2, 3, 4), preset["input_size"]
        what = (f"RANDOM weights, sizes of {source}: F {preset['backbone']}, P {preset['predictor_backbone']} "
                f"at {input_size[0]}x{input_size[1]}, {preset['sr']} {preset['sr_args']}")

    def pipeline(precision, sr_precision=None, batch_size=args.batch_size, sr_size_multiple=None):
        return LRReIDPipeline(reid, sr, predictor, scales=scales, input_size=input_size, precision=precision,
                              sr_precision=sr_precision, batch_size=batch_size, sr_size_multiple=sr_size_multiple)

    load_before = os.getloadavg()[0]
    print(f"model: {what}")
    print(f"device {fast.device}, fast path {fast.mode}{' + channels_last' if fast.channels_last else ''} "
          f"(CPU bf16 support: {cpu_has_fast_bf16()}), {torch.get_num_threads()} threads "
          f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores), "
          f"{len(p_imgs)} probes / {len(g_imgs)} gallery images, median of {args.repeats}")

    results = {"model": what, "device": str(fast.device), "fast_mode": fast.mode, "threads": torch.get_num_threads()}
    slow = pipeline(fp32, batch_size=1)
    variants = {"fast": None, "fp32": fp32} if args.sr_precision == "both" else (
        {"fast": None} if args.sr_precision == "fast" else {"fp32": fp32})
    fast_pipes = {name: pipeline(fast, sr_prec) for name, sr_prec in variants.items()}
    first = next(iter(variants))
    exact_sizes = pipeline(fast, variants[first], sr_size_multiple=1)  # SR batched by exact probe size
    subset = p_imgs[: args.slow_images] if args.slow_images else p_imgs

    # The three measurements take turns, round after round, so that load from other processes on a
    # shared machine falls on all of them alike; each number is the median over the rounds.
    jobs = {"c": lambda: [slow.embed_probes([im]) for im in subset]}
    for name, pipe in fast_pipes.items():
        jobs[f"a/{name}"] = lambda pipe=pipe: pipe.embed_gallery(g_imgs)
        jobs[f"b/{name}"] = lambda pipe=pipe: pipe.embed_probes(p_imgs)
    if args.time_exact_sizes:  # off by default: its many SR shapes crowd oneDNN's kernel cache for all
        jobs["b/exact-sizes"] = lambda: exact_sizes.embed_probes(p_imgs)
    for job in jobs.values():
        job()  # warm-up: oneDNN kernel selection, Meta-SR filter caches
    times = {key: [] for key in jobs}
    cpu_times = {key: [] for key in jobs}
    for _ in range(args.repeats):
        for key, job in jobs.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            job()
            times[key].append(time.perf_counter() - t0)
            cpu_times[key].append(time.thread_time() - c0)
    count = {"c": len(subset)} | {k: len(g_imgs) if k.startswith("a/") else len(p_imgs) for k in jobs if k != "c"}
    ips = {key: count[key] / statistics.median(t) for key, t in times.items()}
    cpu_ips = {key: count[key] / statistics.median(t) for key, t in cpu_times.items()}
    ips_c = ips["c"]
    load_after = os.getloadavg()[0]
    rank_fp32 = ranking(pipeline(fp32), probes, gallery, p_imgs, g_imgs)

    rows = []
    for name, pipe in fast_pipes.items():
        r1, m = ranking(pipe, probes, gallery, p_imgs, g_imgs)
        rows.append({"sr_precision": name if name == "fp32" else fast.mode, "a_reid_ips": ips[f"a/{name}"],
                     "b_pipeline_ips": ips[f"b/{name}"], "c_fp32_single_ips": ips_c, "rank1": r1, "mAP": m,
                     "rank1_fp32": rank_fp32[0], "mAP_fp32": rank_fp32[1],
                     "cpu_time_ips": {"a": cpu_ips[f"a/{name}"], "b": cpu_ips[f"b/{name}"], "c": cpu_ips["c"]}})
    # What the SR canvases change: the same fast pipeline with SR batched by exact probe size.
    canvas_f = fast_pipes[first].embed_probes(p_imgs).features
    exact_f = exact_sizes.embed_probes(p_imgs).features
    cos = torch.nn.functional.cosine_similarity(canvas_f, exact_f)
    exact_rank = ranking(exact_sizes, probes, gallery, p_imgs, g_imgs)
    results["exact_sizes"] = {"b_pipeline_ips": ips.get("b/exact-sizes"), "cpu_time_ips": cpu_ips.get("b/exact-sizes"),
                              "sr_size_multiple": fast_pipes[first].sr_size_multiple, "rank1": exact_rank[0], "mAP": exact_rank[1], "min_cosine_to_canvas": float(cos.min()),
                              "max_abs_feature_diff": float((canvas_f - exact_f).abs().max())}
    results["load"] = [load_before, load_after]

    print(f"\n(c) plain fp32, one image at a time: {ips_c:8.1f} img/s  ({len(subset)} probes)"
          f"  [CPU time: {cpu_ips['c']:.1f} img/s]")
    print(f"fp32 pipeline ranking: Rank-1 {rank_fp32[0]:.2f}  mAP {rank_fp32[1]:.2f}"
          f"  (one probe = {100 / len(p_imgs):.2f} Rank-1 points)")
    timed = (f"{ips['b/exact-sizes']:.1f} img/s ({ips['b/exact-sizes'] / ips_c:.1f}x (c); CPU time "
             f"{cpu_ips['b/exact-sizes'] / cpu_ips['c']:.1f}x); " if "b/exact-sizes" in ips else "")
    print(f"SR canvases (sr_size_multiple={fast_pipes[first].sr_size_multiple}) vs SR batched by exact probe size: "
          f"{timed}exact sizes Rank-1 {exact_rank[0]:.2f} mAP {exact_rank[1]:.2f}; features: min cosine "
          f"{float(cos.min()):.7f}, max |diff| {float((canvas_f - exact_f).abs().max()):.2e}")
    print(f"load average {load_before:.1f} before, {load_after:.1f} after the timed rounds")
    ok_all = True
    for row in rows:
        print(f"\nfast path, SR in {row['sr_precision']}:")
        print(f"  (a) re-ID alone on HR crops:      {row['a_reid_ips']:8.1f} img/s")
        print(f"  (b) full pipeline (P, SR, F):      {row['b_pipeline_ips']:8.1f} img/s")
        cpu = row["cpu_time_ips"]
        print(f"  CPU time: (a) {cpu['a']:.1f}  (b) {cpu['b']:.1f}  (c) {cpu['c']:.1f} img/s -> "
              f"(b)/(c) {cpu['b'] / cpu['c']:.1f}x, (b)/(a) {cpu['b'] / cpu['a']:.2f}x")
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
        atomic_write_json(args.json, results)
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
