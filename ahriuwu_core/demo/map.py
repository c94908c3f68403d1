"""The demo game's world: a 2048x2048 textured MOBA-style map, its lanes and towers, and numpy drawing helpers.

Used by the demo's `game`, `render` and `hud`. The map is the same for every seed (like a real game's map),
built once per process and cached. Features are large and high-contrast (lanes ~140 px wide, river, rock walls,
tree clumps, grass brightness varying over ~100-250 px) so the camera's scroll stays visible after a
640x360 -> 64x64 resize.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

WORLD_SIZE = 2048
MAP_SEED = 20251  # fixed: every video plays on the same map
BLUE_BASE = (230.0, 1818.0)
RED_BASE = (1818.0, 230.0)
BASE_RADIUS = 250.0
LANE_HALF_WIDTH = 70.0
TOWER_LANE_FRACTIONS = {"blue": 0.3, "red": 0.7}  # where along each lane (from the blue end) a tower stands
TOWER_SIDE_OFFSET = 60.0  # towers stand at the lane's edge, not on its centre line

# Lanes as polylines from the blue base to the red base (world px).
LANE_POINTS = {
    "top": [(190.0, 1600.0), (190.0, 190.0), (1600.0, 190.0)],
    "mid": [(380.0, 1668.0), (1668.0, 380.0)],
    "bot": [(448.0, 1858.0), (1858.0, 1858.0), (1858.0, 448.0)],
}

TEAM_COLORS = {"blue": (70, 125, 235), "red": (215, 60, 50)}


@dataclass
class Lane:
    """A lane polyline sampled every world pixel of arc length, for fast (vectorised) position lookups."""

    name: str
    table: np.ndarray  # (L+1, 2) float32 points at arc length 0, 1, ..., L
    normals: np.ndarray  # (L+1, 2) unit normals (left of the blue->red direction)
    length: float

    def xy(self, s: np.ndarray | float, lateral: np.ndarray | float = 0.0) -> np.ndarray:
        """World (x, y) at arc length s (clipped to the lane) shifted `lateral` px along the normal."""
        i = np.clip(np.rint(np.asarray(s, dtype=np.float64)), 0, len(self.table) - 1).astype(np.int64)
        return self.table[i] + self.normals[i] * np.asarray(lateral, dtype=np.float32)[..., None]


def _make_lane(name: str, points: list[tuple[float, float]]) -> Lane:
    pts = np.asarray(points, dtype=np.float64)
    seg = np.diff(pts, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    s = np.arange(int(cum[-1]) + 1, dtype=np.float64)
    k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    frac = (s - cum[k]) / seg_len[k]
    table = pts[k] + seg[k] * frac[:, None]
    tangent = seg[k] / seg_len[k][:, None]
    normals = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    return Lane(name, table.astype(np.float32), normals.astype(np.float32), float(cum[-1]))


@dataclass
class Tower:
    team: str
    lane: str
    s: float  # arc length along the lane, used by minions to decide when they are in range
    xy: tuple[float, float]  # world position of the tower's centre


@dataclass
class World:
    image: np.ndarray  # (WORLD_SIZE + 2*pad, same, 3) uint8, world pixel (x, y) at image[y + pad, x + pad]
    pad: int
    lanes: dict[str, Lane]
    towers: list[Tower]


# ----------------------------------------------------------------------------------------------- drawing helpers


def blend_disc(img: np.ndarray, cx: float, cy: float, r: float, color, alpha: float = 1.0) -> None:
    """Anti-aliased filled disc, blended in place into a float32 or uint8 HxWx3 image (clipped at borders)."""
    _blend_shape(img, cx, cy, r + 1.0, lambda d: np.clip(r + 0.5 - d, 0.0, 1.0), color, alpha)


def blend_ring(img: np.ndarray, cx: float, cy: float, r: float, thickness: float, color, alpha: float = 1.0) -> None:
    """Anti-aliased ring of radius r (centre of the stroke) and given stroke thickness, blended in place."""
    half = thickness / 2.0
    _blend_shape(img, cx, cy, r + half + 1.0, lambda d: np.clip(half + 0.5 - np.abs(d - r), 0.0, 1.0), color, alpha)


def _blend_shape(img, cx, cy, extent, coverage_of_distance, color, alpha) -> None:
    h, w = img.shape[:2]
    x0, x1 = max(int(np.floor(cx - extent)), 0), min(int(np.ceil(cx + extent)) + 1, w)
    y0, y1 = max(int(np.floor(cy - extent)), 0), min(int(np.ceil(cy + extent)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    d = np.sqrt((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2, dtype=np.float32)
    a = (coverage_of_distance(d) * alpha)[..., None]
    patch = img[y0:y1, x0:x1].astype(np.float32)
    out = patch + (np.asarray(color, dtype=np.float32) - patch) * a
    img[y0:y1, x0:x1] = np.clip(out, 0, 255) if img.dtype == np.uint8 else out


class Sprite:
    """A pre-rendered RGBA stamp (premultiplied colours, float32) blitted with alpha at integer positions."""

    def __init__(self, radius: int):
        self.half = int(radius) + 2
        size = 2 * self.half
        self.rgb = np.zeros((size, size, 3), np.float32)
        self.alpha = np.zeros((size, size, 1), np.float32)

    def disc(self, dx: float, dy: float, r: float, color, alpha: float = 1.0) -> "Sprite":
        """Composite a disc centred (dx, dy) px from the sprite's centre onto the stamp ("over" operator)."""
        layer = np.zeros_like(self.rgb)
        blend_disc(layer, self.half + dx, self.half + dy, r, (255, 255, 255), 1.0)
        return self._over(layer[..., :1] / 255.0 * alpha, color)

    def ring(self, dx: float, dy: float, r: float, thickness: float, color, alpha: float = 1.0) -> "Sprite":
        layer = np.zeros_like(self.rgb)
        blend_ring(layer, self.half + dx, self.half + dy, r, thickness, (255, 255, 255), 1.0)
        return self._over(layer[..., :1] / 255.0 * alpha, color)

    def _over(self, a: np.ndarray, color) -> "Sprite":
        self.rgb = self.rgb * (1 - a) + np.asarray(color, np.float32) * a
        self.alpha = self.alpha * (1 - a) + a
        return self

    def blit(self, img: np.ndarray, cx: float, cy: float) -> None:
        h, w = img.shape[:2]
        x0, y0 = int(round(cx)) - self.half, int(round(cy)) - self.half
        size = 2 * self.half
        sx0, sy0 = max(0, -x0), max(0, -y0)
        sx1, sy1 = min(size, w - x0), min(size, h - y0)
        if sx0 >= sx1 or sy0 >= sy1:
            return
        view = img[y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1]
        patch = view * (1 - self.alpha[sy0:sy1, sx0:sx1])  # float32
        patch += self.rgb[sy0:sy1, sx0:sx1]
        view[:] = patch


def clamp(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def fill_rect(img: np.ndarray, x: int, y: int, w: int, h: int, color) -> None:
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, img.shape[1]), min(y + h, img.shape[0])
    if x0 < x1 and y0 < y1:
        img[y0:y1, x0:x1] = color


# ------------------------------------------------------------------------------------------------- map generation


def _value_noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:  # cell in output pixels
    """Smooth value noise in [0, 1]: random values on a grid of `cell` px, smoothstep-interpolated."""
    n = int(size / cell) + 3
    grid = rng.random((n, n), dtype=np.float32)
    c = np.arange(size, dtype=np.float32) / cell
    i0 = c.astype(np.int64)
    f = c - i0
    f = f * f * (3 - 2 * f)
    rows = grid[i0] * (1 - f)[:, None] + grid[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def _segment_distance(xx, yy, a, b) -> np.ndarray:
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.sqrt((xx - ax - t * dx) ** 2 + (yy - ay - t * dy) ** 2)


def _mix(img: np.ndarray, alpha: np.ndarray, color) -> None:
    """img <- img*(1-alpha) + color*alpha, in place (float32 image, alpha HxW or HxWx3)."""
    a = alpha[..., None] if alpha.ndim == 2 else alpha
    img += (np.asarray(color, np.float32) - img) * a


def _upsample2(img: np.ndarray) -> np.ndarray:
    """Bilinear 2x upsampling (separable, edge-clamped) of an (H, W, C) float32 image."""

    def up(a, axis):
        a = np.moveaxis(a, axis, 0)
        prev = np.concatenate([a[:1], a[:-1]])
        nxt = np.concatenate([a[1:], a[-1:]])
        out = np.empty((2 * a.shape[0],) + a.shape[1:], np.float32)
        out[0::2] = 0.75 * a + 0.25 * prev
        out[1::2] = 0.75 * a + 0.25 * nxt
        return np.moveaxis(out, 0, axis)

    return up(up(img, 0), 1)


def _build_world_image() -> np.ndarray:
    """The ground layers, computed at half resolution (fast) then upsampled, plus full-resolution fine texture."""
    S = WORLD_SIZE // 2
    rng = np.random.default_rng(MAP_SEED)
    yy, xx = (np.mgrid[0:S, 0:S].astype(np.float32) + 0.5) * 2  # world coordinates of the half-res pixels

    # Grass: brightness varies over large blobs (visible at 64x64) plus fine texture.
    broad = _value_noise(rng, S, 110) * 0.6 + _value_noise(rng, S, 45) * 0.4
    fine = _value_noise(rng, S, 4)
    img = np.empty((S, S, 3), np.float32)
    clumps = _value_noise(rng, S, 20)  # ~40 px grass clumps: texture that survives the 64x64 resize
    shade = (0.62 + 0.75 * broad + 0.18 * (fine - 0.5) + 0.35 * (clumps - 0.5))[..., None]
    img[:] = np.asarray((62, 118, 52), np.float32) * shade

    # River along the top-left -> bottom-right diagonal, meandering, with two round pits.
    u = (xx + yy) / np.sqrt(2)
    v = (xx - yy) / np.sqrt(2)
    centre = 55 * np.sin(u / 170.0) + 25 * np.sin(u / 61.0 + 1.0)
    d_river = np.abs(v - centre)
    for px, py in ((620.0, 650.0), (1420.0, 1400.0)):
        d_river = np.minimum(d_river, np.hypot(xx - px, yy - py) - 60)
    ripple = _value_noise(rng, S, 12) * 0.6 + _value_noise(rng, S, 30) * 0.6
    river_a = np.clip((62 - d_river) / 6, 0, 1)
    bank_a = np.clip((80 - d_river) / 8, 0, 1) - river_a
    _mix(img, bank_a, (120, 105, 70))
    water = np.stack([40 + 30 * ripple, 90 + 40 * ripple, 150 + 50 * ripple], axis=-1)
    img += (water - img) * river_a[..., None]

    # Rock walls (jungle) with light from the top-left, and dark tree clumps, kept off lanes/river/bases.
    wall_field = _value_noise(rng, S, 75) * 0.7 + _value_noise(rng, S, 28) * 0.3
    d_lane = np.full((S, S), np.inf, np.float32)
    for pts in LANE_POINTS.values():
        for a, b in zip(pts[:-1], pts[1:]):
            d_lane = np.minimum(d_lane, _segment_distance(xx, yy, a, b))
    d_base = np.minimum(np.hypot(xx - BLUE_BASE[0], yy - BLUE_BASE[1]), np.hypot(xx - RED_BASE[0], yy - RED_BASE[1]))
    open_ground = np.clip((d_lane - 120) / 40, 0, 1) * np.clip((d_river - 95) / 30, 0, 1)
    open_ground *= np.clip((d_base - BASE_RADIUS - 60) / 40, 0, 1)
    wall_a = np.clip((wall_field - 0.56) * 25, 0, 1) * open_ground
    light = np.zeros_like(wall_field)
    light[2:, 2:] = wall_field[:-2, :-2] - wall_field[2:, 2:]
    rock = np.asarray((95, 86, 76), np.float32) * (0.8 + 0.35 * fine[..., None])
    rock += np.clip(light, -0.05, 0.05)[..., None] * 900
    img += (rock - img) * wall_a[..., None]
    edge_a = np.clip((wall_field - 0.53) * 25, 0, 1) * open_ground - wall_a
    _mix(img, np.clip(edge_a, 0, 1) * 0.8, (40, 48, 34))

    # Lanes: dirt paths with darker edges and stone texture.
    lane_a = np.clip((LANE_HALF_WIDTH - d_lane) / 8, 0, 1)
    edge = np.clip((LANE_HALF_WIDTH + 10 - d_lane) / 6, 0, 1) - lane_a
    _mix(img, edge * 0.7, (90, 80, 55))
    stones = _value_noise(rng, S, 7)
    dirt = np.stack([165 + 45 * stones, 140 + 38 * stones, 95 + 30 * stones], axis=-1) * (0.85 + 0.3 * broad[..., None])
    # Darker trampled patches (~50-100 px) so a lane scrolling along itself still shows texture at 64x64.
    patches = np.clip((_value_noise(rng, S, 30) - 0.58) * 8, 0, 1) * 0.45
    dirt *= (1 - patches)[..., None]
    img += (dirt - img) * lane_a[..., None]

    # Bases: tiled stone platforms tinted by team (a grid of dark joints gives strong texture).
    tiles = ((xx % 48) < 5) | ((yy % 48) < 5)
    for (bx, by), tint in ((BLUE_BASE, (120, 135, 175)), (RED_BASE, (175, 125, 120))):
        d = np.hypot(xx - bx, yy - by)
        a = np.clip((BASE_RADIUS - d) / 6, 0, 1)
        floor = np.empty_like(img)
        floor[:] = np.asarray(tint, np.float32)
        floor *= (0.85 + 0.3 * fine)[..., None]
        floor[tiles] *= 0.55
        img += (floor - img) * a[..., None]
    # Back to full resolution, with a faint per-pixel grain (static map detail that anchors scroll estimation).
    img = _upsample2(img)
    grain = np.random.default_rng(MAP_SEED + 2).random((WORLD_SIZE, WORLD_SIZE), dtype=np.float32)
    img *= (0.97 + 0.06 * grain)[..., None]
    # Trees: clumps of dark green crowns along the walls' edges.
    cand = np.argwhere((edge_a > 0.2)[::4, ::4]) * 8
    pick = cand[rng.random(len(cand)) < 0.22]
    for y, x in pick:
        r = rng.uniform(14, 28)
        cx, cy = x + rng.uniform(-6, 6), y + rng.uniform(-6, 6)
        blend_disc(img, cx + 4, cy + 5, r, (20, 35, 20), 0.6)  # shadow
        blend_disc(img, cx, cy, r, (28, 72, 34))
        blend_disc(img, cx - r * 0.3, cy - r * 0.3, r * 0.45, (55, 110, 50), 0.9)

    # Map border: the world ends in dark cliffs.
    ramp = np.clip((40 - np.arange(40, dtype=np.float32)) / 20, 0, 1)  # only the outer 40 px change
    cliff = np.asarray((45, 42, 38), np.float32)
    for strip in (img[:40], img[-40:][::-1], img[:, :40].transpose(1, 0, 2), img[:, -40:][:, ::-1].transpose(1, 0, 2)):
        strip += (cliff - strip) * ramp[:, None, None]
    return img


def _tower_positions(lanes: dict[str, Lane]) -> list[Tower]:
    towers = []
    for name, lane in lanes.items():
        for team, frac in TOWER_LANE_FRACTIONS.items():
            s = frac * lane.length
            side = 1.0 if name != "bot" else -1.0  # keep towers on the lane's inner side
            x, y = lane.xy(s, side * TOWER_SIDE_OFFSET)
            towers.append(Tower(team, name, s, (float(x), float(y))))
    return towers


def _draw_structures(img: np.ndarray, towers: list[Tower]) -> None:
    for t in towers:
        x, y = t.xy
        color = TEAM_COLORS[t.team]
        blend_disc(img, x + 10, y + 12, 36, (20, 25, 20), 0.55)  # shadow
        blend_disc(img, x, y, 36, (60, 58, 62))
        blend_disc(img, x, y, 30, (125, 122, 130))
        blend_disc(img, x, y, 21, (80, 78, 86))
        blend_disc(img, x, y, 13, color)
        blend_disc(img, x - 4, y - 4, 5, (235, 240, 255))
    for (bx, by), team in ((BLUE_BASE, "blue"), (RED_BASE, "red")):  # nexus crystals
        color = np.asarray(TEAM_COLORS[team], np.float32)
        blend_disc(img, bx + 12, by + 14, 60, (20, 25, 20), 0.5)
        blend_disc(img, bx, by, 60, (70, 68, 75))
        blend_disc(img, bx, by, 48, color * 0.6)
        blend_disc(img, bx, by, 34, color)
        blend_disc(img, bx - 10, by - 10, 12, (240, 245, 255))


WORLD_PAD = 768  # void around the map, so any view up to 1536 px wide can be cropped without bounds checks


@functools.lru_cache(maxsize=1)
def get_world() -> World:
    """The demo world (cached per process): padded map image, lanes, towers."""
    pad = WORLD_PAD
    lanes = {name: _make_lane(name, pts) for name, pts in LANE_POINTS.items()}
    towers = _tower_positions(lanes)
    img = _build_world_image()
    _draw_structures(img, towers)
    S = WORLD_SIZE
    rng = np.random.default_rng(MAP_SEED + 1)
    blocks = -(-(S + 2 * pad) // 32)
    void = np.repeat(np.repeat(rng.random((blocks, blocks), dtype=np.float32), 32, 0), 32, 1)[
        : S + 2 * pad, : S + 2 * pad
    ]
    image = (np.asarray((28, 32, 30), np.float32) * (0.7 + 0.6 * void)[..., None]).astype(np.uint8)
    image[pad : pad + S, pad : pad + S] = np.clip(img, 0, 255).astype(np.uint8)
    image.setflags(write=False)
    return World(image=image, pad=pad, lanes=lanes, towers=towers)


@functools.lru_cache(maxsize=8)
def minimap_image(w: int, h: int) -> np.ndarray:
    """The whole map area-averaged to (h, w), dimmed so nothing on it is as bright as the player marker."""
    world = get_world()
    S, pad = WORLD_SIZE, world.pad
    img = world.image[pad : pad + S, pad : pad + S].astype(np.float32)
    small = img.reshape(128, S // 128, 128, S // 128, 3).mean(axis=(1, 3))
    ys = np.minimum((np.arange(h) + 0.5) * 128 / h, 127).astype(np.int64)
    xs = np.minimum((np.arange(w) + 0.5) * 128 / w, 127).astype(np.int64)
    return np.clip(small[ys][:, xs] * 0.72 + 8, 0, 255).astype(np.float32)
