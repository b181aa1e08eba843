"""The HTML results page: thumbnails that open the full images."""
from __future__ import annotations

import re
from urllib.request import url2pathname

import numpy as np
import torch
from PIL import Image

from lrreid.search.html import write_html
from lrreid.search.searcher import Match, SearchResult


def _image(path, size=(64, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(path)
    return path


def test_thumbnails_link_to_their_full_images_relative_to_the_page(tmp_path):
    probe = _image(tmp_path / "probes" / "q 1.png", (16, 8))  # a space: the link must be URL-quoted
    g1, g2 = _image(tmp_path / "gallery" / "a.jpg"), _image(tmp_path / "gallery" / "b.jpg")
    result = SearchResult(str(probe), 2, [Match(1, str(g1), 0.5), Match(2, str(g2), 0.7), Match(3, str(tmp_path / "gone.jpg"), 0.9, missing=True)],
                          probe_image=torch.rand(3, 16, 8), sr_image=torch.rand(3, 32, 16))
    page = write_html([result], tmp_path / "out" / "results.html")
    hrefs = re.findall(r'<a href="([^"]+)"><img ', page.read_text())
    # probe and the two gallery images that exist; no link for the missing one (or the SR output)
    assert [(page.parent / url2pathname(h)).resolve() for h in hrefs] == [probe, g1, g2]
    assert all(not h.startswith("/") for h in hrefs)  # relative: page and images can move together


def test_in_memory_probe_has_no_link(tmp_path):
    g = _image(tmp_path / "g.jpg")
    result = SearchResult("<image 0>", 1, [Match(1, str(g), 0.1)], probe_image=torch.rand(3, 16, 8))
    page = write_html([result], tmp_path / "r.html").read_text()
    assert re.findall(r'<a href="([^"]+)">', page) == ["g.jpg"]
