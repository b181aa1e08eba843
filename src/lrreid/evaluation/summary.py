"""Mean and standard deviation of metrics over several evaluation splits (VIPeR, GRID, PRID...)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrreid.errors import ProtocolError
from lrreid.evaluation.metrics import RankResult


def summarize(results: Sequence[RankResult], ranks=(1, 5, 10)) -> dict[str, tuple[float, float]]:
    """``{"Rank-1": (mean, std), ..., "mAP": (mean, std), "mINP": (mean, std)}`` in percent.

    ``std`` is the population standard deviation over the splits (numpy's default, ddof=0), so a
    single split gives std 0.

    Example::

        >>> summarize([res_split0, res_split1])["Rank-1"]     # doctest: +SKIP
        (48.7, 1.9)
    """
    if len(results) == 0:
        raise ProtocolError("summarize: no evaluation results given (expected one per split)")
    rows = [r.as_dict(ranks) for r in results]
    return {key: (float(np.mean([row[key] for row in rows])), float(np.std([row[key] for row in rows])))
            for key in rows[0]}
