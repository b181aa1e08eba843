"""An embedded synthetic low-resolution re-ID dataset: rendered pedestrians, generated from a seed.

Why it exists: tests, examples and smoke runs need a dataset that is always there, takes seconds
to make, and behaves like LR re-ID, i.e. where resolution matters.  So every identity has

* coarse attributes shared with several others: top and trousers colour from a small palette and
  a body shape (``12`` coarse groups, about ``num_ids / 12`` people each), and
* fine, identity-specific detail that low resolution erases: square-wave stripes on the top and
  trousers at several spatial frequencies (periods of 3-8 px at 128x64) and orientations, a 5x5
  binary "logo" and a small badge.  The stripes are balanced around the garment colour, so the
  mean colour of a region does not give the identity away once they are blurred out.

Two cameras look at everyone:

* camid 0, view ``"ground"``: the near camera, 128x64 HR crops, neutral light, a light wall.
* camid 1, view ``"aerial"``: the far camera, a dimmer bluish light, asphalt, a steeper angle
  (vertical foreshortening); each image is rendered at 128x64 and then genuinely reduced: optical
  blur, antialiased bicubic down-sampling by a factor drawn per image (tracklet) from [2, 4], sensor
  noise and a light JPEG round trip.  The factor is the record's ``scale``; the file is small.

Every image has its own pose (shift, scale, flip, shear, leg swing) and lighting jitter.  No
official split (protocols decide), as CAVIAR.  ``synthetic_video`` renders short tracklets instead,
with smooth motion and walking within a tracklet.

Images are written once, atomically, to ``<cache>/synthetic/<hash of the parameters>`` (the user
cache, ``$LRREID_CACHE`` or ``$XDG_CACHE_HOME/lrreid`` or ``~/.cache/lrreid``, or ``cache_dir``) and
reused afterwards; every pixel depends only on ``(seed, pid, camid, shot)``.

>>> from lrreid.data.datasets import build_dataset
>>> ds = build_dataset("synthetic", num_ids=24, images_per_camera=2, cache_dir="/tmp/lrreid-doc")
>>> len(ds), ds.records[0].view, ds.pids[:3]
(96, 'ground', [1, 2, 3])
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import check_options
from lrreid.data.degradations import GaussianBlur, JpegCompression, SensorNoise, bicubic_downsample
from lrreid.data.records import ImageRecord, ReidDataset, TrackletRecord
from lrreid.errors import ConfigError, DatasetLayoutError
from lrreid.utils.atomic import atomic_dir, atomic_write_json

# Bump when the renderer changes, so cached folders made by an older renderer are not reused.
GENERATOR_VERSION = 1
HR_SIZE = (128, 64)  # (h, w) of the near camera and of every render before reduction
VIEWS = {0: "ground", 1: "aerial"}
FAR_FACTOR_RANGE = (2.0, 4.0)

# Coarse palette: deliberately small, so several people share each combination.
TOP_COLOURS = np.array([[0.70, 0.16, 0.16], [0.16, 0.26, 0.66], [0.52, 0.52, 0.50]], dtype=np.float32)
BOTTOM_COLOURS = np.array([[0.13, 0.13, 0.26], [0.56, 0.50, 0.34]], dtype=np.float32)
BODY_WIDTHS = (24, 31)  # torso width in px at 128x64: slim, broad
NUM_COARSE_GROUPS = len(TOP_COLOURS) * len(BOTTOM_COLOURS) * len(BODY_WIDTHS)
BADGE_COLOURS = np.array(
    [[0.95, 0.85, 0.10], [0.10, 0.80, 0.30], [0.95, 0.95, 0.95], [0.05, 0.05, 0.05],
     [0.90, 0.40, 0.05], [0.60, 0.10, 0.70]], dtype=np.float32)
SKIN = np.array([0.86, 0.66, 0.52], dtype=np.float32)
HAIR = np.array([0.18, 0.12, 0.08], dtype=np.float32)
SHOES = np.array([0.08, 0.08, 0.08], dtype=np.float32)
STRIPE_PERIODS = (3.0, 4.0, 5.0, 6.0, 8.0)
STRIPE_ANGLES = (0.0, 45.0, 90.0, 135.0)

# Label values of the body-part map.
BG, SKIN_L, HAIR_L, TOP_L, BOTTOM_L, SHOES_L = range(6)


@dataclass(frozen=True)
class Identity:
    """What one synthetic person looks like: coarse (shared) attributes plus fine detail."""

    pid: int
    top: int  # index into TOP_COLOURS
    bottom: int  # index into BOTTOM_COLOURS
    body: int  # index into BODY_WIDTHS
    top_stripes: tuple[float, float, float, float]  # angle (deg), period (px), phase, contrast
    bottom_stripes: tuple[float, float, float, float]  # contrast 0 = plain trousers
    logo: tuple[tuple[int, ...], ...]  # 5x5 of +1/-1
    logo_pos: tuple[float, float]  # (y, x) in torso-relative units [0, 1]
    badge_pos: tuple[float, float]
    badge_colour: int  # index into BADGE_COLOURS

    @property
    def coarse_group(self) -> int:
        return (self.top * len(BOTTOM_COLOURS) + self.bottom) * len(BODY_WIDTHS) + self.body


def make_identities(num_ids: int, seed: int) -> list[Identity]:
    """Identities ``1..num_ids`` (0 would mean distractor); coarse groups are filled evenly."""
    rng = np.random.default_rng([seed, 0x1D])
    groups = rng.permutation(num_ids) % NUM_COARSE_GROUPS
    people = []
    for i in range(num_ids):
        g = int(groups[i])
        body, g = g % len(BODY_WIDTHS), g // len(BODY_WIDTHS)
        bottom, top = g % len(BOTTOM_COLOURS), g // len(BOTTOM_COLOURS)

        def stripes(contrast_low: float, plain_prob: float) -> tuple[float, float, float, float]:
            angle = float(rng.choice(STRIPE_ANGLES))
            period = float(rng.choice(STRIPE_PERIODS))
            phase = float(rng.uniform(0, 1))
            contrast = 0.0 if rng.uniform() < plain_prob else float(rng.uniform(contrast_low, 0.30))
            return angle, period, phase, contrast

        people.append(Identity(
            pid=i + 1, top=top, bottom=bottom, body=body,
            top_stripes=stripes(0.16, 0.0),
            bottom_stripes=stripes(0.12, 0.3),
            logo=tuple(tuple(int(v) for v in row) for row in rng.choice([-1, 1], size=(5, 5))),
            logo_pos=(float(rng.uniform(0.15, 0.55)), float(rng.uniform(0.2, 0.8))),
            badge_pos=(float(rng.uniform(0.1, 0.8)), float(rng.uniform(0.15, 0.85))),
            badge_colour=int(rng.integers(len(BADGE_COLOURS))),
        ))
    return people


@dataclass(frozen=True)
class Pose:
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    flip: bool = False
    shear: float = 0.0
    swing: float = 0.0  # leg swing in [-1, 1]
    squash: float = 1.0  # vertical foreshortening (aerial view)


@dataclass(frozen=True)
class Light:
    gain: float = 1.0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)


def _square_wave(yy: np.ndarray, xx: np.ndarray, stripes: tuple[float, float, float, float]) -> np.ndarray:
    angle, period, phase, _ = stripes
    t = math.cos(math.radians(angle)) * xx + math.sin(math.radians(angle)) * yy
    return np.where(np.sin(2 * math.pi * (t / period + phase)) >= 0, 1.0, -1.0).astype(np.float32)


def _label_map(person: Identity, swing: float, h: int, w: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Body-part labels of an upright person centred in an ``h x w`` canvas, and the torso box."""
    sy, sx = h / HR_SIZE[0], w / HR_SIZE[1]
    cx = w / 2
    tw = BODY_WIDTHS[person.body] * sx
    labels = Image.new("L", (w, h), BG)
    d = ImageDraw.Draw(labels)
    top, hip, foot = 25 * sy, 68 * sy, 118 * sy
    leg_w, gap = (tw / 2 - 1.5 * sx), 1.5 * sx
    # Legs: the feet swing forwards/backwards; the hips stay put.
    for side, sign in ((-1, 1), (1, -1)):
        hx = cx + side * (gap / 2 + leg_w / 2)
        fx = hx + sign * swing * 5 * sx
        d.polygon([(hx - leg_w / 2, hip), (hx + leg_w / 2, hip), (fx + leg_w / 2.4, foot), (fx - leg_w / 2.4, foot)],
                  fill=BOTTOM_L)
        d.rectangle([fx - leg_w / 2.2, foot - 1, fx + leg_w / 2.2, foot + 5 * sy], fill=SHOES_L)
    # Arms swing opposite to the legs.
    arm_w = 5 * sx
    for side, sign in ((-1, -1), (1, 1)):
        ax = cx + side * (tw / 2 + arm_w / 2 - 1)
        hx = ax + sign * swing * 3 * sx
        d.polygon([(ax - arm_w / 2, top + 2 * sy), (ax + arm_w / 2, top + 2 * sy),
                   (hx + arm_w / 2, 62 * sy), (hx - arm_w / 2, 62 * sy)], fill=TOP_L)
        d.ellipse([hx - arm_w / 2, 60 * sy, hx + arm_w / 2, 66 * sy], fill=SKIN_L)
    d.rectangle([cx - tw / 2, top, cx + tw / 2, hip + 1], fill=TOP_L)
    d.rectangle([cx - 3 * sx, 19 * sy, cx + 3 * sx, top + 1], fill=SKIN_L)  # neck
    d.ellipse([cx - 7 * sx, 5 * sy, cx + 7 * sx, 22 * sy], fill=SKIN_L)
    d.chord([cx - 7.5 * sx, 4 * sy, cx + 7.5 * sx, 17 * sy], 180, 360, fill=HAIR_L)
    box = (int(round(top)), int(round(hip)), int(round(cx - tw / 2)), int(round(cx + tw / 2)))
    return np.asarray(labels), box


def _person_layer(person: Identity, pose: Pose, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB (h, w, 3) and alpha (h, w) of the person in its own upright frame, before the pose warp."""
    labels, (t0, t1, l0, l1) = _label_map(person, pose.swing, h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    rgb[labels == SKIN_L] = SKIN
    rgb[labels == HAIR_L] = HAIR
    rgb[labels == SHOES_L] = SHOES
    # Garments: colour plus a balanced luminance pattern (the identity's fine detail).
    top_tex = TOP_COLOURS[person.top] + (person.top_stripes[3] * _square_wave(yy, xx, person.top_stripes))[..., None]
    # A 5x5 logo of 1-px cells and a small badge, placed inside the torso.
    th, tw = t1 - t0, l1 - l0
    ly, lx = t0 + int(person.logo_pos[0] * (th - 5)), l0 + int(person.logo_pos[1] * (tw - 5))
    top_tex[ly:ly + 5, lx:lx + 5] = TOP_COLOURS[person.top] + 0.28 * np.array(person.logo, np.float32)[..., None]
    by, bx = t0 + int(person.badge_pos[0] * (th - 3)), l0 + int(person.badge_pos[1] * (tw - 3))
    top_tex[by:by + 3, bx:bx + 3] = BADGE_COLOURS[person.badge_colour]
    mask = labels == TOP_L
    rgb[mask] = top_tex[mask]
    bottom_tex = BOTTOM_COLOURS[person.bottom] + (
        person.bottom_stripes[3] * _square_wave(yy, xx, person.bottom_stripes))[..., None]
    mask = labels == BOTTOM_L
    rgb[mask] = bottom_tex[mask]
    return np.clip(rgb, 0, 1), (labels != BG).astype(np.float32)


def _warp(layer: np.ndarray, pose: Pose, h: int, w: int, resample=Image.BILINEAR) -> np.ndarray:
    """Apply the pose (scale about the centre, shear, foreshortening, shift, flip) to a float layer."""
    cx, cy = w / 2, h / 2
    sx, sy = pose.scale, pose.scale * pose.squash
    # PIL wants the inverse map output -> input: x_in = a x + b y + c, y_in = d x + e y + f.
    a, b = 1 / sx, -pose.shear / sy
    d_, e = 0.0, 1 / sy
    ox, oy = cx + pose.dx, cy + pose.dy
    c = cx - a * ox - b * oy
    f = cy - d_ * ox - e * oy
    out = []
    chans = layer[..., None] if layer.ndim == 2 else layer
    for ch in range(chans.shape[-1]):
        img = Image.fromarray(chans[..., ch], mode="F")
        out.append(np.asarray(img.transform((w, h), Image.AFFINE, (a, b, c, d_, e, f), resample=resample)))
    res = np.stack(out, axis=-1)
    if pose.flip:
        res = res[:, ::-1]
    return res[..., 0] if layer.ndim == 2 else res


def _background(camid: int, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A camera-specific scene: a light wall over pavement (near), or darker asphalt (far), with texture."""
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    if camid == 0:
        wall = np.array([0.78, 0.74, 0.66], np.float32) * rng.uniform(0.9, 1.1)
        floor = np.array([0.55, 0.55, 0.55], np.float32) * rng.uniform(0.9, 1.1)
        horizon = rng.uniform(0.7, 0.85)
        bg = np.where(yy < horizon, wall, floor) * np.ones((h, w, 1), np.float32)
    else:
        base = np.array([0.33, 0.38, 0.33], np.float32) * rng.uniform(0.85, 1.15)
        bg = base * (0.9 + 0.2 * yy) * np.ones((h, w, 1), np.float32)
        # Painted road markings, as seen from above.
        x0 = int(rng.integers(0, w))
        bg[:, x0:x0 + 3] = 0.8
    # Low-frequency blotches so backgrounds differ between shots.
    coarse = rng.normal(0, 0.05, size=(h // 16 + 1, w // 16 + 1, 3)).astype(np.float32)
    blotches = np.asarray(Image.fromarray(((coarse + 0.5) * 255).clip(0, 255).astype(np.uint8), "RGB")
                          .resize((w, h), Image.BICUBIC), np.float32) / 255 - 0.5
    return np.clip(bg + blotches, 0, 1)


def sample_pose(camid: int, rng: np.random.Generator) -> Pose:
    return Pose(
        dx=float(rng.uniform(-3, 3)), dy=float(rng.uniform(-3, 3)), scale=float(rng.uniform(0.92, 1.06)),
        flip=bool(rng.uniform() < 0.5), shear=float(rng.uniform(-0.08, 0.08)), swing=float(rng.uniform(-1, 1)),
        squash=float(rng.uniform(0.84, 0.92)) if camid == 1 else 1.0,
    )


def sample_light(camid: int, rng: np.random.Generator) -> Light:
    if camid == 0:
        base_gain, base_cast = 1.0, np.array([1.0, 1.0, 0.97])
    else:  # overcast and bluish, seen through more atmosphere
        base_gain, base_cast = 0.78, np.array([0.90, 1.0, 1.15])
    cast = base_cast * rng.uniform(0.95, 1.05, size=3)
    return Light(gain=float(base_gain * rng.uniform(0.9, 1.1)), cast=tuple(float(c) for c in cast))


def render(person: Identity, camid: int, pose: Pose, light: Light, bg_rng: np.random.Generator) -> np.ndarray:
    """The HR (128x64) rendering of ``person`` seen by camera ``camid``: float (h, w, 3) in [0, 1]."""
    h, w = HR_SIZE
    rgb, alpha = _person_layer(person, pose, h, w)
    rgb, alpha = _warp(rgb, pose, h, w), _warp(alpha, pose, h, w)[..., None]
    img = alpha * rgb + (1 - alpha) * _background(camid, bg_rng, h, w)
    img = img * light.gain * np.array(light.cast, np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def to_pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")


def reduce_far(hr: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    """What the far camera records: optical blur, bicubic down-sampling by ``factor``, noise, light JPEG."""
    img = GaussianBlur((0.3, 0.8))(hr, rng)
    img = bicubic_downsample(img, factor)
    img = SensorNoise((0.005, 0.02))(img, rng)
    return JpegCompression((75, 95))(img, rng)


def _shot_rng(seed: int, pid: int, camid: int, shot: int, frame: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, pid, camid, shot, frame, 0x5EED])


def render_shot(person: Identity, camid: int, shot: int, seed: int) -> tuple[Image.Image, Image.Image, float]:
    """One still image: ``(hr, recorded, factor)``; for camid 0 ``recorded`` is ``hr`` and factor 1.

    Exposed so tests can compare a far-camera image with the HR rendering it was reduced from.
    """
    rng = _shot_rng(seed, person.pid, camid, shot)
    pose, light = sample_pose(camid, rng), sample_light(camid, rng)
    hr = render(person, camid, pose, light, rng)
    hr = hr + rng.normal(0, 0.004, size=hr.shape).astype(np.float32)  # faint sensor noise at HR too
    hr_img = to_pil(hr)
    if camid == 0:
        return hr_img, hr_img, 1.0
    factor = round(float(rng.uniform(*FAR_FACTOR_RANGE)), 2)
    return hr_img, reduce_far(hr_img, factor, rng), factor


def render_tracklet(person: Identity, camid: int, shot: int, num_frames: int, seed: int
                    ) -> tuple[list[Image.Image], list[Image.Image], float]:
    """A tracklet: the person walks across the view with a steady gait; one factor per tracklet."""
    rng = _shot_rng(seed, person.pid, camid, shot)
    start, light = sample_pose(camid, rng), sample_light(camid, rng)
    vx, vy = rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.3)  # px per frame
    gait, gait_phase = rng.uniform(0.5, 0.9), rng.uniform(0, 2 * math.pi)
    factor = round(float(rng.uniform(*FAR_FACTOR_RANGE)), 2) if camid == 1 else 1.0
    bg_seed = int(rng.integers(2 ** 31))
    hr_frames, recorded = [], []
    for t in range(num_frames):
        pose = Pose(dx=start.dx + vx * t, dy=start.dy + vy * t, scale=start.scale * (1 + 0.004 * t),
                    flip=start.flip, shear=start.shear, swing=math.sin(gait * t + gait_phase),
                    squash=start.squash)
        frng = _shot_rng(seed, person.pid, camid, shot, t + 1)
        hr = render(person, camid, pose, light, np.random.default_rng(bg_seed))  # static scene
        hr_img = to_pil(hr + frng.normal(0, 0.004, size=hr.shape).astype(np.float32))
        hr_frames.append(hr_img)
        recorded.append(hr_img if camid == 0 else reduce_far(hr_img, factor, frng))
    return hr_frames, recorded, factor


# --------------------------------------------------------------------------- cache and loaders


def default_cache_dir() -> Path:
    """``$LRREID_CACHE``, else ``$XDG_CACHE_HOME/lrreid``, else ``~/.cache/lrreid``."""
    if os.environ.get("LRREID_CACHE"):
        return Path(os.environ["LRREID_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lrreid"


def _cache_folder(kind: str, params: dict, cache_dir: str | os.PathLike | None) -> Path:
    key = json.dumps({"kind": kind, "generator": GENERATOR_VERSION, **params}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "synthetic" / f"{kind}-{digest}"


def _generate(folder: Path, kind: str, params: dict, write_items) -> None:
    """Write the dataset into ``folder`` atomically unless it is already there."""
    if (folder / "meta.json").is_file():
        return
    if folder.exists():
        raise DatasetLayoutError(f"{folder}: exists but holds no meta.json (not a complete synthetic dataset); "
                                 f"delete it to regenerate")
    try:
        with atomic_dir(folder) as tmp:
            items = write_items(tmp)
            atomic_write_json(tmp / "meta.json", {"kind": kind, "generator": GENERATOR_VERSION,
                                                  "params": params, "items": items})
    except OSError:
        # Another process finished the same folder first: its copy is identical, use it.
        if not (folder / "meta.json").is_file():
            raise


def _read_meta(folder: Path) -> dict:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise DatasetLayoutError(f"{folder / 'meta.json'}: unreadable synthetic dataset cache ({exc})") from None


def _check_params(num_ids: int, per_camera: int, name: str) -> None:
    if not isinstance(num_ids, int) or num_ids < 2:
        raise ConfigError(f"synthetic: num_ids must be an integer >= 2, got {num_ids!r}")
    if not isinstance(per_camera, int) or per_camera < 1:
        raise ConfigError(f"synthetic: {name} must be an integer >= 1, got {per_camera!r}")


@DATASETS.register("synthetic")
@check_options
def load_synthetic(root: str | None = None, *, num_ids: int = 60, images_per_camera: int = 6, seed: int = 0,
                   cache_dir: str | os.PathLike | None = None) -> ReidDataset:
    """Synthetic still images: camid 0 "ground" HR 128x64, camid 1 "aerial" genuine LR (scale 2-4).

    ``root``, when given, is used as ``cache_dir`` (the folder holding ``synthetic/``).

    >>> ds = load_synthetic(None, num_ids=12, images_per_camera=1, cache_dir="/tmp/lrreid-doc")
    >>> sorted({(r.camid, r.view) for r in ds.records})
    [(0, 'ground'), (1, 'aerial')]
    """
    _check_params(num_ids, images_per_camera, "images_per_camera")
    params = {"num_ids": num_ids, "images_per_camera": images_per_camera, "seed": seed}
    folder = _cache_folder("images", params, cache_dir if cache_dir is not None else root)

    def write_items(tmp: Path) -> list[dict]:
        items = []
        for person in make_identities(num_ids, seed):
            for camid in VIEWS:
                for shot in range(images_per_camera):
                    _, img, factor = render_shot(person, camid, shot, seed)
                    rel = f"c{camid}/{person.pid:04d}_c{camid}_s{shot:02d}.png"
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    img.save(tmp / rel)
                    items.append({"path": rel, "pid": person.pid, "camid": camid, "scale": factor})
        return items

    _generate(folder, "images", params, write_items)
    records = [ImageRecord(path=str(folder / it["path"]), pid=it["pid"], camid=it["camid"], split=None,
                           view=VIEWS[it["camid"]], scale=float(it["scale"])) for it in _read_meta(folder)["items"]]
    return ReidDataset(name="synthetic", records=records, is_video=False)


@DATASETS.register("synthetic_video")
@check_options
def load_synthetic_video(root: str | None = None, *, num_ids: int = 60, tracklets_per_camera: int = 2,
                         frames_per_tracklet: int = 8, seed: int = 0,
                         cache_dir: str | os.PathLike | None = None) -> ReidDataset:
    """Synthetic tracklets: near/"ground" HR tracklets (camid 0), far/"aerial" LR tracklets (camid 1).

    Each tracklet has ``frames_per_tracklet`` frames of one walk (smooth shift, gait, slight zoom);
    a far tracklet is reduced by one factor (its ``scale``) for all its frames.

    >>> ds = load_synthetic_video(None, num_ids=12, tracklets_per_camera=1, cache_dir="/tmp/lrreid-doc")
    >>> ds.is_video, len(ds.records[0].frames)
    (True, 8)
    """
    _check_params(num_ids, tracklets_per_camera, "tracklets_per_camera")
    _check_params(num_ids, frames_per_tracklet, "frames_per_tracklet")
    params = {"num_ids": num_ids, "tracklets_per_camera": tracklets_per_camera,
              "frames_per_tracklet": frames_per_tracklet, "seed": seed}
    folder = _cache_folder("video", params, cache_dir if cache_dir is not None else root)

    def write_items(tmp: Path) -> list[dict]:
        items = []
        for person in make_identities(num_ids, seed):
            for camid in VIEWS:
                for shot in range(tracklets_per_camera):
                    _, frames, factor = render_tracklet(person, camid, shot, frames_per_tracklet, seed)
                    sub = f"c{camid}/{person.pid:04d}_c{camid}_t{shot:02d}"
                    (tmp / sub).mkdir(parents=True, exist_ok=True)
                    rels = []
                    for t, frame in enumerate(frames):
                        frame.save(tmp / sub / f"f{t:03d}.png")
                        rels.append(f"{sub}/f{t:03d}.png")
                    items.append({"frames": rels, "pid": person.pid, "camid": camid, "scale": factor})
        return items

    _generate(folder, "video", params, write_items)
    records = [TrackletRecord(frames=tuple(str(folder / p) for p in it["frames"]), pid=it["pid"], camid=it["camid"],
                              split=None, view=VIEWS[it["camid"]], scale=float(it["scale"]))
               for it in _read_meta(folder)["items"]]
    return ReidDataset(name="synthetic_video", records=records, is_video=True)
