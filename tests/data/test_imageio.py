"""read_image turns every odd image a re-ID dataset contains into upright 8-bit RGB, or one-line errors."""
from __future__ import annotations

import logging
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from lrreid.data.imageio import ALPHA_BACKGROUND, BadImagePolicy, image_size, read_image
from lrreid.errors import ConfigError, ImageReadError


def _rgb(width=24, height=48, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _one_line(exc: pytest.ExceptionInfo, path) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# --------------------------------------------------------------------------- files that are not images


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageReadError) as exc:
        read_image(path)
    assert "not found" in _one_line(exc, path)
    assert exc.value.reason == "missing"


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError) as exc:
        read_image(path)
    assert "0 bytes" in _one_line(exc, path)


def test_text_file_renamed_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageReadError) as exc:
        read_image(path)
    assert "not an image" in _one_line(exc, path)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file_raises_instead_of_grey_padding(tmp_path, fmt, keep):
    full = tmp_path / f"full.{fmt.lower()}"
    Image.fromarray(_rgb(64, 128)).save(full, format=fmt)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert image_size(cut) == (64, 128)  # the header alone looks fine
    with pytest.raises(ImageReadError) as exc:
        read_image(cut)
    assert "truncated" in _one_line(exc, cut)
    assert exc.value.reason == "truncated"


def test_truncated_file_detected_even_when_pil_is_told_to_pad(tmp_path, monkeypatch):
    full = tmp_path / "full.jpg"
    Image.fromarray(_rgb(64, 128)).save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:600])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(cut)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("side", [1, 2, 3, 5, 8])
def test_tiny_images_are_readable(tmp_path, side):
    path = tmp_path / f"tiny{side}.png"
    pixels = _rgb(side, side, seed=side)
    Image.fromarray(pixels).save(path)
    img = read_image(path)
    assert img.size == (side, side)
    np.testing.assert_array_equal(np.asarray(img), pixels)


def test_smaller_than_min_side_names_size_and_minimum(tmp_path):
    path = tmp_path / "crop.png"
    Image.fromarray(_rgb(3, 7)).save(path)
    assert read_image(path, min_side=3).size == (3, 7)
    with pytest.raises(ImageReadError) as exc:
        read_image(path, min_side=4)
    message = _one_line(exc, path)
    assert "3x7" in message and "4 px" in message
    assert exc.value.reason == "too_small"


def _png_header_only(path, width, height):
    """A PNG whose IHDR claims width x height but that carries (almost) no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [9_000, 10_000, 60_000])  # under, between and over PIL's own bomb limits
def test_decompression_bomb_refused_before_decoding(tmp_path, side):
    path = tmp_path / "bomb.png"
    _png_header_only(path, side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning must not leak out either
        with pytest.raises(ImageReadError) as exc:
            read_image(path)
    message = _one_line(exc, path)
    assert exc.value.reason == "too_large"  # not "truncated": nothing was decoded
    assert "pixels" in message


def test_max_pixels_is_the_callers_limit(tmp_path):
    path = tmp_path / "ok.png"
    Image.fromarray(_rgb(20, 10)).save(path)
    assert read_image(path, max_pixels=200).size == (20, 10)
    with pytest.raises(ImageReadError, match="max_pixels=199"):
        read_image(path, max_pixels=199)


# --------------------------------------------------------------------------- modes


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(gray, mode="L").save(path)
    out = np.asarray(read_image(path))
    assert out.shape == (8, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_palette_image(tmp_path):
    path = tmp_path / "pal.png"
    img = Image.new("P", (4, 4))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    img.paste(1, (0, 0, 2, 4))
    img.save(path)
    out = read_image(path)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (0, 0, 255)
    assert out.getpixel((3, 0)) == (255, 0, 0)


def test_palette_with_transparency_composited_on_background(tmp_path):
    path = tmp_path / "pal_t.png"
    img = Image.new("P", (4, 4))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    img.paste(1, (0, 0, 2, 4))
    img.save(path, transparency=0)  # palette entry 0 (red) is fully transparent
    out = read_image(path)
    assert out.getpixel((0, 0)) == (0, 255, 0)
    assert out.getpixel((3, 3)) == ALPHA_BACKGROUND


def test_rgba_composited_on_fixed_background(tmp_path):
    path = tmp_path / "rgba.png"
    pixels = np.zeros((2, 3, 4), dtype=np.uint8)
    pixels[..., 0] = 200
    pixels[0, 0, 3] = 255  # opaque: keeps its colour
    pixels[0, 1, 3] = 0  # transparent: the background
    pixels[0, 2, 3] = 128  # half: a blend
    Image.fromarray(pixels, mode="RGBA").save(path)
    out = np.asarray(read_image(path)).astype(int)
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[0, 1]) == ALPHA_BACKGROUND
    blend = np.array([200, 0, 0]) * 128 / 255 + np.array(ALPHA_BACKGROUND) * 127 / 255
    np.testing.assert_allclose(out[0, 2], blend, atol=1.5)


def test_la_composited_on_fixed_background(tmp_path):
    path = tmp_path / "la.png"
    pixels = np.array([[[10, 255], [10, 0]]], dtype=np.uint8)
    Image.fromarray(pixels, mode="LA").save(path)
    out = read_image(path)
    assert out.getpixel((0, 0)) == (10, 10, 10)
    assert out.getpixel((1, 0)) == ALPHA_BACKGROUND


def test_16bit_grayscale_scaled_by_its_real_range(tmp_path):
    path = tmp_path / "g16.png"
    values = np.linspace(1000, 5000, 64, dtype=np.uint16).reshape(8, 8)  # a 12-bit sensor in 16-bit PNG
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    out = np.asarray(read_image(path))
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    assert out.min() == 0 and out.max() == 255  # stretched, neither clipped to white nor nearly black
    expected = np.rint((values.astype(float) - 1000) / 4000 * 255)
    np.testing.assert_allclose(out[..., 0], expected, atol=1)
    assert len(np.unique(out[..., 0])) > 50  # gradations survive


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 0, 0)).save(path, quality=100)  # pure magenta ink
    assert Image.open(path).mode == "CMYK"
    r, g, b = read_image(path).getpixel((4, 4))
    assert r > 230 and g < 25 and b > 230


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg_is_made_upright(tmp_path, orientation):
    # Stored landscape 40x20 (as a phone held sideways stores it); the tag says rotate to portrait.
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red, right half blue
    stored[:, 20:] = (0, 0, 255)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"rot{orientation}.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    out = read_image(path)
    assert out.size == (20, 40)  # now portrait: a person stands upright
    assert image_size(path) == (20, 40)
    top, bottom = out.getpixel((10, 2)), out.getpixel((10, 37))
    if orientation == 6:  # rotate 90 clockwise: the stored left half ends on top
        assert top[0] > 200 and bottom[2] > 200
    else:  # 8: rotate 90 counter-clockwise: the stored right half ends on top
        assert top[2] > 200 and bottom[0] > 200


def test_plain_rgb_roundtrip_and_image_size(tmp_path):
    path = tmp_path / "rgb.bmp"
    pixels = _rgb(48, 128)
    Image.fromarray(pixels).save(path)
    out = read_image(path)
    assert out.mode == "RGB" and image_size(path) == (48, 128)
    np.testing.assert_array_equal(np.asarray(out), pixels)


def test_image_size_errors_like_read_image(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_text("hello")
    with pytest.raises(ImageReadError, match="not an image"):
        image_size(path)


# --------------------------------------------------------------------------- policy


def test_policy_raise_reraises(tmp_path):
    policy = BadImagePolicy()
    with pytest.raises(ImageReadError):
        policy.read(tmp_path / "missing.png")


def test_policy_skip_counts_by_reason_and_logs_each_file(tmp_path, caplog):
    good = tmp_path / "good.png"
    Image.fromarray(_rgb(8, 8)).save(good)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("no")
    policy = BadImagePolicy("skip")
    with caplog.at_level(logging.DEBUG, logger="lrreid"):
        results = [policy.read(p) for p in (good, empty, text, tmp_path / "gone.png")]
    assert results[0] is not None and results[1:] == [None, None, None]
    assert policy.skipped == {"empty": 1, "not_an_image": 1, "missing": 1}
    assert policy.summary() == "skipped 3 unreadable images: empty 1, missing 1, not_an_image 1"
    logged = [r.getMessage() for r in caplog.records if "skipping image" in r.getMessage()]
    assert len(logged) == 3 and any(str(empty) in m for m in logged)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lrreid"):
        policy.log_summary()
    assert [r.getMessage() for r in caplog.records] == [policy.summary()]


def test_policy_never_swallows_bugs():
    policy = BadImagePolicy("skip")
    with pytest.raises(KeyError):
        policy.handle(KeyError("a bug, not a bad image"))


def test_policy_rejects_unknown_mode():
    with pytest.raises(ConfigError, match="ignore"):
        BadImagePolicy("ignore")


def test_image_to_tensor_is_the_exact_inverse_of_tensor_to_pil():
    """The one image -> tensor of lrreid (loading, evaluation, search): uint8 / 255, any PIL mode as RGB."""
    import numpy as np
    from PIL import Image

    from lrreid.data.imageio import image_to_tensor, tensor_to_pil
    from lrreid.data.loading import to_tensor
    from lrreid.inference.pipeline import to_image_tensor

    pixels = np.random.default_rng(0).integers(0, 256, (5, 3, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    x = image_to_tensor(image)
    assert x.dtype.is_floating_point and x.shape == (3, 5, 3)
    assert np.array_equal(np.asarray(tensor_to_pil(x)), pixels)
    for same in (to_tensor(image), to_image_tensor(image), to_image_tensor(pixels), image_to_tensor(image.convert("P").convert("RGB"))):
        assert same.shape == x.shape
    assert (to_tensor(image) == x).all() and (to_image_tensor(pixels) == x).all()
    assert image_to_tensor(image.convert("L")).shape == (3, 5, 3)
