"""Read any person crop as an upright 8-bit RGB image, or fail with one line that says why.

Re-ID datasets are collected from many sources and contain every kind of oddity: grayscale and
palette files, 16-bit PNGs, CMYK JPEGs, phone photos rotated by EXIF, crops of one or two pixels,
files cut short by an interrupted download.  :func:`read_image` turns all of them into the same
thing (a fully decoded ``PIL.Image`` in mode ``"RGB"``) or raises
:class:`~lrreid.errors.ImageReadError`; a truncated file never comes back half grey.

:class:`BadImagePolicy` decides what a caller does with such an error: re-raise it (default) or
skip the file, count it by reason and log it.

Example::

    >>> img = read_image("Market-1501-v15.09.15/query/0001_c1s1_001051_00.jpg")
    >>> img.mode, img.size
    ('RGB', (64, 128))
"""
from __future__ import annotations

import logging
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from lrreid.errors import ImageReadError
from lrreid.utils.logging import get_logger

log = get_logger("data.imageio")

# Transparent pixels are composited onto neutral grey: close to the mean a network is normalised
# with, so a transparent area looks like padding rather than like black or white clothing.
ALPHA_BACKGROUND = (128, 128, 128)

# Errors PIL and its codecs raise on a damaged file (UnidentifiedImageError is an OSError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)

# EXIF orientations that swap width and height (rotations by 90 or 270 degrees, with or without a flip).
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


def _error(path: Path, reason: str, detail: str) -> ImageReadError:
    """An ImageReadError whose ``reason`` (a short key) lets :class:`BadImagePolicy` count it."""
    return ImageReadError(f"{path}: {detail}", reason=reason, path=str(path))


def _check_file(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise _error(path, "broken_link", "is a symbolic link that loops or points nowhere (expected an image file)")
    if not path.exists():
        raise _error(path, "missing", "file not found (expected an image file)")
    if not path.is_file():
        raise _error(path, "not_a_file", "is not a regular file (expected an image file)")
    if path.stat().st_size == 0:
        raise _error(path, "empty", "file is empty, 0 bytes (expected an image file)")


def _open(path: Path) -> Image.Image:
    """Open the header only; PIL's own decompression-bomb checks become an ImageReadError."""
    try:
        with warnings.catch_warnings():
            # lrreid applies its own max_pixels limit right after this; PIL's warning would only
            # be noise (or, with -W error, a traceback).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise _error(path, "too_large", f"image header claims too many pixels ({exc}); refusing to decode") from None
    except UnidentifiedImageError:
        raise _error(path, "not_an_image", "not an image PIL can read (expected JPEG/PNG/BMP/...)") from None
    except _DECODE_ERRORS as exc:
        raise _error(path, "corrupt", f"cannot open image header ({type(exc).__name__}: {exc})") from None


def _check_size(path: Path, size: tuple[int, int], min_side: int, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise _error(
            path, "too_large",
            f"image is {width}x{height} = {width * height} pixels, more than max_pixels={max_pixels} "
            "(a corrupt header or a decompression bomb); refusing to decode",
        )
    if min(width, height) < min_side:
        raise _error(
            path, "too_small",
            f"image is {width}x{height} pixels, smaller than the minimum side of {min_side} px",
        )


def _decode_fully(path: Path, image: Image.Image) -> None:
    """Decode every pixel now, so a file cut short raises here instead of coming back padded."""
    # PIL pads truncated files with grey when its global LOAD_TRUNCATED_IMAGES switch is on (some
    # libraries turn it on); it is switched off for the duration of this decode.
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        image.load()
    except _DECODE_ERRORS as exc:
        message = str(exc)
        if "truncated" in message or isinstance(exc, EOFError):
            raise _error(path, "truncated", f"image file is truncated ({message}); expected a complete image") from None
        raise _error(path, "corrupt", f"cannot decode image ({type(exc).__name__}: {message})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _exif_orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))  # 0x0112 = Orientation
    except Exception:  # a broken EXIF block is not a broken image
        return 1


def _upright(path: Path, image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation so a person photographed with a rotated camera stands upright."""
    if _exif_orientation(image) == 1:
        return image
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # keep the pixels; the orientation tag alone is unusable
        log.warning("%s: cannot apply EXIF orientation (%s); using the image as stored", path, exc)
        return image


def _scale_to_8bit(path: Path, image: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float grayscale -> 8-bit, stretching the image's real value range to 0..255.

    Clipping at 255 would turn nearly every 16-bit pixel white; a fixed /257 would leave a sensor
    that uses 12 of its 16 bits almost black.  A constant image keeps its level relative to the
    mode's nominal maximum.
    """
    values = np.asarray(image, dtype=np.float64)
    if values.ndim != 2:
        raise _error(path, "unsupported_mode", f"unexpected {image.mode} image of shape {values.shape} (expected 2-D)")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise _error(path, "corrupt", f"{image.mode} image has no finite pixel values")
    lo, hi = float(finite.min()), float(finite.max())
    if hi > lo:
        scaled = (np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo) - lo) / (hi - lo) * 255.0
    else:
        nominal = {"F": 1.0, "I": float(2**31 - 1)}.get(image.mode, 65535.0)
        scaled = np.full_like(values, np.clip(lo / nominal, 0.0, 1.0) * 255.0)
    return Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")


def _to_rgb(path: Path, image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _scale_to_8bit(path, image).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV ...
    except ValueError as exc:
        raise _error(path, "unsupported_mode", f"cannot convert mode {mode!r} to RGB ({exc})") from None


def read_image(path: str | os.PathLike, *, min_side: int = 1, max_pixels: int = 64_000_000) -> Image.Image:
    """Read an image file as a fully decoded, upright, 8-bit RGB ``PIL.Image``.

    - size limits are checked on the header, before any pixel is decoded: more than ``max_pixels``
      pixels, or a side shorter than ``min_side``, raises :class:`ImageReadError`;
    - the whole file is decoded here, so a truncated JPEG/PNG raises instead of coming back padded;
    - EXIF orientation is applied (``ImageOps.exif_transpose``);
    - grayscale, palette, CMYK etc. are converted to RGB; transparency is composited onto
      :data:`ALPHA_BACKGROUND` (neutral grey 128, 128, 128); 16-bit and float grayscale are
      stretched from their real min..max range to 0..255.

    Example::

        >>> read_image("cam_a/000_45.bmp").size
        (48, 128)
        >>> read_image("tiny.png", min_side=8)
        Traceback (most recent call last):
        lrreid.errors.ImageReadError: tiny.png: image is 4x4 pixels, smaller than the minimum side of 8 px
    """
    path = Path(path)
    _check_file(path)
    image = _open(path)
    try:
        _check_size(path, image.size, min_side, max_pixels)
        _decode_fully(path, image)
        upright = _upright(path, image)
        return _to_rgb(path, upright)
    finally:
        image.close()


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) as :func:`read_image` would return it, read from the header only.

    EXIF rotations by 90/270 degrees swap the two.  The same missing/empty/not-an-image errors as
    :func:`read_image`; a truncated body is not detected (nothing is decoded).

    Example::

        >>> image_size("cam_a/000_45.bmp")
        (48, 128)
    """
    path = Path(path)
    _check_file(path)
    image = _open(path)
    try:
        width, height = image.size
        if _exif_orientation(image) in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
        return width, height
    finally:
        image.close()


class BadImagePolicy:
    """What to do when an image cannot be read: ``"raise"`` (default) or ``"skip"`` and count it.

    In skip mode :meth:`handle` records the error under its reason (``missing``, ``broken_link``, ``empty``,
    ``not_an_image``, ``truncated``, ``corrupt``, ``too_small``, ``too_large``, ...) and logs one
    line per file: the first ``warn_first`` at WARNING, the rest at DEBUG.  Errors that are not
    :class:`ImageReadError` (bugs) are always re-raised.

    Example::

        >>> policy = BadImagePolicy("skip")
        >>> for path in paths:
        ...     try:
        ...         images.append(read_image(path))
        ...     except ImageReadError as exc:
        ...         policy.handle(exc)
        >>> print(policy.summary())
        skipped 2 unreadable images: truncated 1, too_small 1
    """

    MODES = ("raise", "skip")

    def __init__(self, mode: str = "raise", *, warn_first: int = 20):
        if mode not in self.MODES:
            from lrreid.errors import ConfigError

            raise ConfigError(f"bad-image policy {mode!r} is not one of {', '.join(self.MODES)}")
        self.mode = mode
        self.warn_first = warn_first
        self.skipped: dict[str, int] = {}

    @property
    def total(self) -> int:
        return sum(self.skipped.values())

    def handle(self, exc: BaseException) -> None:
        """Re-raise ``exc`` (mode ``"raise"``, or not an ImageReadError), else count and log it."""
        if self.mode == "raise" or not isinstance(exc, ImageReadError):
            raise exc
        reason = getattr(exc, "reason", "unreadable")
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if self.total <= self.warn_first:
            level = logging.WARNING
            suffix = " (further skipped images are logged at DEBUG level)" if self.total == self.warn_first else ""
        else:
            level, suffix = logging.DEBUG, ""
        log.log(level, "skipping image: %s%s", exc, suffix)

    def read(self, path: str | os.PathLike, **kwargs) -> Image.Image | None:
        """:func:`read_image`, returning ``None`` for a skipped file."""
        try:
            return read_image(path, **kwargs)
        except ImageReadError as exc:
            self.handle(exc)
            return None

    def summary(self) -> str:
        """One line, e.g. ``"skipped 3 unreadable images: truncated 2, too_small 1"``."""
        if not self.skipped:
            return "no unreadable images skipped"
        parts = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items()))
        return f"skipped {self.total} unreadable image{'s' if self.total != 1 else ''}: {parts}"

    def log_summary(self) -> None:
        if self.skipped:
            log.warning(self.summary())


def image_to_tensor(image: Image.Image | np.ndarray):
    """An RGB image (PIL, or an ``HxWx3`` uint8 array) -> float32 tensor ``[3, H, W]``, ``uint8 / 255``.

    The one way lrreid turns pixels into a network's [0, 1] values (data loading, evaluation, search);
    :func:`tensor_to_pil` is its exact inverse.

    >>> image_to_tensor(Image.new("RGB", (64, 128))).shape
    torch.Size([3, 128, 64])
    """
    import torch

    if isinstance(image, Image.Image):
        image = image.convert("RGB") if image.mode != "RGB" else image
    arr = np.array(image, dtype=np.uint8)  # a writable copy, so torch does not share PIL's buffer
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)


def tensor_to_pil(image) -> Image.Image:
    """A float ``[3, H, W]`` tensor in [0, 1] -> an RGB PIL image, each value rounded to uint8.

    The inverse of reading an image as ``uint8 / 255``, exactly: a tensor that came from an image
    file gives that file's pixels back.

    >>> import torch
    >>> tensor_to_pil(torch.ones(3, 4, 2)).size
    (2, 4)
    """
    arr = (image.detach().float().clamp(0, 1) * 255.0).round().to("cpu").numpy().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)), "RGB")
