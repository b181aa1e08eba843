"""Gallery search: embed a folder of HR images into a faiss index on disk, query it with LR probes.

- :func:`build_index` / ``lrreid index``: embed a gallery folder (incrementally), exact or approximate.
- :class:`Searcher` / ``lrreid search``: probes -> predicted scale -> SR -> features -> top-k.
- :func:`write_html`: a self-contained results page with thumbnails.
"""
from lrreid.search.index import GalleryIndex, IndexReport, build_index
from lrreid.search.searcher import Match, SearchResult, Searcher

__all__ = ["GalleryIndex", "IndexReport", "build_index", "Match", "SearchResult", "Searcher"]
