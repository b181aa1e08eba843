"""Mean and standard deviation of metrics over several evaluation splits (VIPeR, GRID, PRID...).

:func:`mean_std` is the one place that turns per-split numbers into ``(mean, std)``; every
"mean ± std over splits" in lrreid (:func:`summarize`, ``methods.base.combine_split_reports``,
S3-CLIP's cross-view report) goes through it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from lrreid.errors import ProtocolError
from lrreid.evaluation.metrics import RankResult


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """``(mean, std)`` of per-split values; ``std`` is the population standard deviation (ddof=0),
    so a single split gives std 0.

    >>> mean_std([0.4, 0.6])
    (0.5, 0.09999999999999998)
    """
    values = list(values)
    return float(np.mean(values)), float(np.std(values))


def mean_std_per_key(rows: Sequence[Mapping[str, float]], keys: Iterable[str] | None = None
                     ) -> dict[str, tuple[float, float]]:
    """``{key: (mean, std)}`` over ``rows`` (one mapping per split) for ``keys`` (default: the first
    row's keys, in its order); see :func:`mean_std`.

    >>> mean_std_per_key([{"R1": 0.4}, {"R1": 0.6}])["R1"][0]
    0.5
    """
    keys = list(rows[0]) if keys is None else list(keys)
    return {key: mean_std(row[key] for row in rows) for key in keys}


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
    return mean_std_per_key([r.as_dict(ranks) for r in results])
