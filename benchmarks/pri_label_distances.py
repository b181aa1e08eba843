"""Why PRI's soft labels come out flat: the distances d_i of Eq. 3 on real training batches of a run.

For the first ``--batches`` training batches of a trained PRI run (its own training triplets, flips
off, x_h the first HR image of the person), prints per image the distances
``d_i = ||F(G_{r_i}(x_l)) - F(x_h)||`` at every scale, then over all images: the feature norm, the
mean and spread of d_i across scales, and the labels' mean entropy and max-probability with the
paper's formula and with the per-image normalisations of ``loss.label_norm``.

    python benchmarks/pri_label_distances.py runs/demo [--batches 2] [--temperature 0.05 0.1 0.2]
    python benchmarks/pri_label_distances.py configs/pri_caviar_0277.yaml   # a config: its networks untrained
"""
from __future__ import annotations

import argparse
import math

import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--temperature", type=float, nargs="*", default=[0.03, 0.05, 0.1, 0.2])
    ap.add_argument("--show", type=int, default=8, help="images whose d_i are printed")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from lrreid.build import load_run
    from lrreid.methods.pri.model import eval_mode
    from lrreid.methods.pri.soft_labels import label_statistics, scale_factor_metric

    if args.run.endswith((".yaml", ".yml")):  # the config's networks as built (pretrained files, no training)
        from lrreid.build import build_method, build_splits
        from lrreid.config import load_config

        cfg = load_config(args.run)
        method = build_method(cfg, build_splits(cfg)).eval()
    else:
        method = load_run(args.run)
    ds = method._train_dataset
    ds.flip = False
    torch.manual_seed(0)
    n = min(len(ds), args.batches * args.batch_size)
    items = [ds[i] for i in torch.randperm(len(ds))[:n].tolist()]
    all_d, norms = [], []
    with torch.no_grad(), eval_mode(method.reid_net), eval_mode(method.sr_net):
        for start in range(0, n, args.batch_size):
            chunk = items[start:start + args.batch_size]
            x_l = torch.stack([c["x_l"] for c in chunk])
            x_h = torch.stack([c["x_h"] for c in chunk])
            lr_hw = torch.stack([c["lr_hw"] for c in chunk])
            anchor = method.reid_net(method.net_input(x_h)).float()
            feats = [method.reid_net(method.lr_net_inputs(x_l, lr_hw, s)).float() for s in method.scales]
            all_d.append(torch.stack([(f - anchor).norm(dim=1) for f in feats], dim=1))
            norms.append(anchor.norm(dim=1))
    d = torch.cat(all_d)
    norm = torch.cat(norms)
    scales = " ".join(f"x{s:<6}" for s in method.scales)
    print(f"d_i on {len(d)} training images of {args.run} (F's retrieval feature, eval mode)")
    print(f"{'image':>5}  {scales}  mean-d   max-min")
    for i in range(min(args.show, len(d))):
        row = " ".join(f"{v:7.3f}" for v in d[i].tolist())
        print(f"{i:5d}  {row}  {d[i].mean():6.3f}  {d[i].max() - d[i].min():6.3f}")
    spread = d.max(1).values - d.min(1).values
    print(f"|F(x_h)|: mean {norm.mean():.3f}; d_i: mean {d.mean():.3f}; per image max-min: median {spread.median():.3f}, "
          f"mean {spread.mean():.3f}; relative (max-min)/mean: median {(spread / d.mean(1)).median():.3f}")
    print(f"labels over {len(d)} images (uniform: entropy {math.log(d.shape[1]):.3f}, max-prob {1 / d.shape[1]:.3f}):")
    rows = [("none", 1.0, 1), ("none", 1.0, 3)] + [(nm, t, g) for nm in ("mean", "std") for t in args.temperature for g in (1,)]
    for nm, t, g in rows:
        stats = label_statistics(scale_factor_metric(d, g, nm, t))
        print(f"  label_norm={nm:<4} temperature={t:<5g} gamma={g}: entropy {stats['entropy']:.3f}  max-prob {stats['max_prob']:.3f}")


if __name__ == "__main__":
    main()
