"""A self-contained HTML page of search results: probe, its SR output, the ranked gallery.

Every picture is embedded as a base64 JPEG thumbnail, so the page can be mailed or archived on its
own; each thumbnail of a file (probe, gallery image) links to that file, relative to the page, so
on the machine that holds the images a click opens the full-size one.  Low-resolution probes keep their pixels (scaled up by the browser without smoothing), so the
page shows how little the model had to work with.
"""
from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from urllib.request import pathname2url

import numpy as np
import torch
from PIL import Image

from lrreid.data.imageio import read_image, tensor_to_pil
from lrreid.errors import ImageReadError
from lrreid.utils.atomic import atomic_write_text

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
h1{font-size:1.3em} .meta{color:#666;font-size:.85em;margin-bottom:1em}
.probe{display:flex;gap:.6em;align-items:flex-start;overflow-x:auto;padding:.8em;margin-bottom:1em;
background:#fff;border:1px solid #ddd;border-radius:6px}
figure{margin:0;text-align:center;font-size:.75em;flex:none}
figure img{height:%(h)dpx;display:block;margin:0 auto .2em;border:1px solid #ccc}
figure.lr img{image-rendering:pixelated} figure.query{border-right:2px solid #999;padding-right:.6em}
.missing{height:%(h)dpx;width:%(w)dpx;background:repeating-linear-gradient(45deg,#eee,#eee 6px,#ddd 6px,#ddd 12px);
display:flex;align-items:center;justify-content:center;color:#a00;border:1px solid #c99;margin:0 auto .2em}
.name{max-width:9em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:#555}
.warn{color:#a00}
"""


def thumbnail_data_uri(image: Image.Image | torch.Tensor | np.ndarray, max_height: int = 128) -> str:
    """``data:image/jpeg;base64,...`` of ``image`` shrunk to at most ``max_height`` pixels high."""
    if isinstance(image, torch.Tensor):
        image = tensor_to_pil(image)
    elif isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    if image.height > max_height:
        image = image.resize((max(1, round(image.width * max_height / image.height)), max_height), Image.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_link(path: str | os.PathLike, page_dir: str | os.PathLike | None) -> str:
    """``href`` of an image file: relative to the page's folder (so both can move together), else absolute."""
    target = Path(path).resolve()
    if page_dir is not None:
        try:
            return pathname2url(os.path.relpath(target, Path(page_dir).resolve()))
        except ValueError:  # another drive (Windows): no relative path
            pass
    return target.as_uri()


def _figure(uri: str | None, caption: str, title: str, css_class: str = "", placeholder: str = "missing",
            href: str | None = None) -> str:
    """One picture with its caption, linked to ``href``; a hatched placeholder box when there is no picture."""
    if uri is None:
        body = f'<div class="missing">{html.escape(placeholder)}</div>'
    else:
        body = f'<img src="{uri}" alt="{html.escape(title)}">'
        if href is not None:
            body = f'<a href="{html.escape(href)}">{body}</a>'
    return f'<figure class="{css_class}" title="{html.escape(title)}">{body}{caption}</figure>'


def render_html(results, title: str = "lrreid search results", meta: str = "", thumb_height: int = 128,
                page_dir: str | os.PathLike | None = None) -> str:
    """The page as a string (see :func:`write_html`); links are relative to ``page_dir`` when given."""
    rows = []
    for res in results:
        cells = []
        if res.probe_image is not None:
            cells.append(_figure(thumbnail_data_uri(res.probe_image, thumb_height),
                                 f'<div>probe</div><div class="name">{html.escape(Path(res.probe).name)}</div>',
                                 res.probe, "lr", href=_probe_link(res.probe, page_dir)))
        if res.sr_image is not None:
            cells.append(_figure(thumbnail_data_uri(res.sr_image, thumb_height),
                                 f"<div>SR x{res.scale}</div>", f"{res.probe} super-resolved x{res.scale}",
                                 "lr query"))
        for m in res.matches:
            label = f'<div>#{m.rank} &nbsp;d={m.distance:.3f}</div><div class="name">{html.escape(Path(m.path).name)}</div>'
            uri, placeholder = None, "missing"
            if not m.missing:
                try:
                    uri = thumbnail_data_uri(read_image(m.path), thumb_height)
                except ImageReadError:
                    placeholder = "unreadable"
                if m.changed:
                    label += '<div class="warn">changed since indexing</div>'
            cells.append(_figure(uri, label, m.path, placeholder=placeholder,
                                 href=None if uri is None else file_link(m.path, page_dir)))
        rows.append(f'<section class="probe">{"".join(cells)}</section>')
    css = _CSS % {"h": thumb_height, "w": thumb_height // 2}
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{css}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><div class=\"meta\">{html.escape(meta)}</div>"
        + "\n".join(rows) + "</body></html>\n"
    )


def _probe_link(probe: str, page_dir) -> str | None:
    """A probe given as a file links to it; one given as an array or PIL image has no file."""
    return file_link(probe, page_dir) if probe and Path(probe).is_file() else None


def write_html(results, out_path: str | os.PathLike, title: str = "lrreid search results", meta: str = "",
               thumb_height: int = 128) -> Path:
    """Write the results page (atomically); results come from ``Searcher.search(..., keep_images=True)``.

    Example::

        >>> results = searcher.search(["probe.jpg"], k=10, keep_images=True)
        >>> write_html(results, "results.html")
    """
    out = Path(out_path)
    atomic_write_text(out, render_html(results, title, meta, thumb_height, page_dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o666 & ~umask)  # a page to share: the usual file mode, not the temp file's 0600
    return out
