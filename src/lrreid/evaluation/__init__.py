"""Evaluation: re-ID ranking metrics (CMC, mAP, mINP) and chunked query-gallery distances.

Example::

    from lrreid.evaluation import evaluate_features, summarize
    res = evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids, metric="cosine")
    print(res.as_dict())   # {"Rank-1": .., "Rank-5": .., "Rank-10": .., "mAP": .., "mINP": ..}
"""
from lrreid.evaluation.distance import distance_chunks, pairwise_distance, smallest_k, topk_neighbors
from lrreid.evaluation.metrics import RankResult, evaluate_features, evaluate_rank, true_match_ranks
from lrreid.evaluation.summary import mean_std, mean_std_per_key, summarize

__all__ = ["RankResult", "evaluate_rank", "evaluate_features", "true_match_ranks", "pairwise_distance",
           "topk_neighbors", "smallest_k", "distance_chunks", "summarize", "mean_std", "mean_std_per_key"]
