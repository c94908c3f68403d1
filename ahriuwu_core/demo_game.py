"""The built-in demo game: a small, deterministic top-down MOBA (a League-of-Legends-replay look-alike) and its
video writer, so the whole pipeline runs without downloading anything.

The camera is locked on the player champion (always drawn at the screen centre) who walks over a 2048x2048
textured map (lanes, river, rock walls, trees, towers, bases; see `demo_map.py`) with 8-direction moves, casts 4
abilities with visible effects and cooldowns, while minion waves walk and fight along the three lanes. A HUD in
the fixed `DEMO_HUD_REGIONS` shows a minimap (player = bright white square), health/mana bars and 4 ability icons
(greyed while on cooldown). A scripted policy with randomness plays; the seed makes everything reproducible
(same seed -> byte-identical frames and actions).

Action convention (frame i, source frame rate fps):
  - The action recorded for frame i is chosen from the state at frame i and is "in force while rendering frame
    i": frame i already shows its facing, its cast (effect start, icon greyed), and the player is drawn at
    position p_i.
  - The move of frame i moves the player between frame i and frame i+1: p_{i+1} = p_i + speed/fps * dir(move_i)
    (diagonals normalised, so every non-zero move covers speed/fps world px per frame). The map therefore
    scrolls by -speed/fps * dir(move_i) on screen between frames i and i+1.
  - The policy never steers into the world border, so the recorded move is always the motion that happens.
  - The camera follows the rounded position, so the on-screen scroll per frame is a whole number of pixels
    (5 at 200 px/s and 40 fps; 3 or 4 per axis on diagonals) summing to the exact motion.
  - 40 fps: the frames stage's 20 fps shows every second source frame, so a held move scrolls the same distance
    in every output frame (a 30 fps source alternates 1- and 2-frame steps, 33 and 67 ms).
  This is the sidecar side of `ahriuwu_core.conventions`: the record at t is in force from t on; the frames
  stage gives output frame k the action that led into it.
The sidecar (`<stem>.actions.json`, contract format) also carries `player_world_xy` (p_i per frame) and `demo`
(the settings + DEMO_GAME_VERSION, used to skip complete videos).
Coordinates: world px with y down; move 0 = still, 1..8 = E, NE, N, NW, W, SW, S, SE (N = up on screen).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .files import atomic_path, write_json
from .motion import estimate_shift, motion_weights
from .demo_map import (
    BLUE_BASE, TEAM_COLORS, WORLD_PAD, WORLD_SIZE, Sprite, blend_disc, blend_ring, fill_rect, get_world, minimap_image,
)

DEMO_HUD_REGIONS = {"minimap": (528, 248, 112, 112), "abilities_health": (192, 312, 256, 48)}  # (x, y, w, h) at 640x360
HUD_REFERENCE_SIZE = (640, 360)
DEMO_GAME_VERSION = 3  # bump when the rendering or the simulation changes: existing demo videos are regenerated
ACTION_COMPONENTS = ["move", "ability"]
ACTION_NUM_CLASSES = [9, 5]

_DIAG = 1 / math.sqrt(2)
MOVE_VECTORS = np.array(  # unit screen-space directions (x right, y down) for move 0..8
    [(0, 0), (1, 0), (_DIAG, -_DIAG), (0, -1), (-_DIAG, -_DIAG), (-1, 0), (-_DIAG, _DIAG), (0, 1), (_DIAG, _DIAG)],
    dtype=np.float64)
ABILITY_COOLDOWN_S = (1.6, 3.5, 5.0, 9.0)
ABILITY_COLORS = ((90, 170, 255), (190, 90, 255), (255, 105, 180), (255, 205, 60))
PLAYER_MARGIN = 140.0  # the policy keeps the player at least this far from the world's edge


@dataclass
class DemoConfig:
    num_videos: int = 8
    duration_s: float = 30.0
    fps: float = 40.0
    width: int = 640
    height: int = 360
    seed: int = 0  # video k plays with seed `seed * 1000 + k`
    player_speed: float = 200.0  # world (= source) px per second
    crf: int = 20
    preset: str = "veryfast"

    @property
    def num_frames(self) -> int:
        return int(round(self.duration_s * self.fps))


def _clamp(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def hud_regions(width: int = 640, height: int = 360) -> dict[str, tuple[int, int, int, int]]:
    """DEMO_HUD_REGIONS scaled from 640x360 to (width, height), as integer (x, y, w, h)."""
    sx, sy = width / HUD_REFERENCE_SIZE[0], height / HUD_REFERENCE_SIZE[1]
    out = {}
    for name, (x, y, w, h) in DEMO_HUD_REGIONS.items():
        x0, y0 = int(round(x * sx)), int(round(y * sy))
        out[name] = (x0, y0, int(round((x + w) * sx)) - x0, int(round((y + h) * sy)) - y0)
    return out


def move_from_vector(dx: float, dy: float) -> int:
    """The move (1..8) whose direction is closest to the screen vector (dx, dy); 0 for a zero vector."""
    if dx == 0 and dy == 0:
        return 0
    sector = int(round(math.atan2(-dy, dx) / (math.pi / 4))) % 8
    return sector + 1


# ------------------------------------------------------------------------------------------------------ the game

@dataclass
class _Effect:
    kind: str  # cast_flash | orb | foxfire | charm | burst | tower_shot | spark | puff
    age: int
    life: int
    x: float
    y: float
    dx: float = 0.0
    dy: float = 0.0
    color: tuple = (255, 255, 255)
    target: int = -1
    hit: set = dataclasses.field(default_factory=set)


class DemoGame:
    """Game state + renderer. Per frame: `play(move, ability)` = apply the action, render, advance one frame."""

    MAX_MINIONS = 240

    def __init__(self, seed: int, width: int = 640, height: int = 360, fps: float = 40.0, player_speed: float = 200.0):
        if width % 2 or height % 2 or width < 64 or height < 36:
            raise ValueError(f"demo frame size {width}x{height}: width and height must be even and >= 64x36")
        if max(width, height) // 2 + 8 > WORLD_PAD:
            raise ValueError(f"demo frame size {width}x{height}: at most {2 * WORLD_PAD - 16} px per side")
        if fps <= 0 or player_speed <= 0:
            raise ValueError(f"demo fps={fps} and player_speed={player_speed} must be positive")
        self.width, self.height, self.fps, self.speed = width, height, float(fps), float(player_speed)
        self.dt = 1.0 / self.fps
        self.world = get_world()
        self.lanes = list(self.world.lanes.values())
        self.rng = np.random.default_rng(seed)
        self.frame_index = 0
        self.hud = hud_regions(width, height)
        self.cooldown = np.zeros(4, np.int64)  # frames left per ability
        self.cooldown_total = np.array([max(1, round(c * self.fps)) for c in ABILITY_COOLDOWN_S])
        self.hp, self.mana = 100.0, 100.0
        self.effects: list[_Effect] = []
        self._panel_cache: dict = {}
        n = self.MAX_MINIONS
        self.m_alive = np.zeros(n, bool)
        self.m_lane = np.zeros(n, np.int64)
        self.m_team = np.zeros(n, np.int64)  # +1 blue (walks towards increasing s), -1 red
        self.m_s = np.zeros(n)
        self.m_lat = np.zeros(n)
        self.m_hp = np.zeros(n)
        self.m_timer = np.zeros(n)  # seconds until the minion's next attack
        self.m_xy = np.zeros((n, 2), np.float32)  # world positions, refreshed after every simulation step
        lane_names = [lane.name for lane in self.lanes]
        self.lane_towers = [[(t.s, 1 if t.team == "blue" else -1) for t in self.world.towers if t.lane == name]
                            for name in lane_names]
        self.tower_lane = [lane_names.index(t.lane) for t in self.world.towers]
        self.next_wave_t = 0.0
        self.sim_t = 0.0
        self.next_tower_t = 0.0
        # Warm up the lanes (coarse 0.1 s steps, it is off-screen) so waves are spread out and fighting at frame 0.
        warm = self.rng.uniform(20.0, 45.0)
        self.dt = 0.1
        while self.sim_t < warm:
            self._advance_world(record_effects=False)
        self.dt = 1.0 / self.fps
        self.effects.clear()
        lane = self.lanes[self.rng.choice(3, p=[0.25, 0.5, 0.25])]
        s = self.rng.uniform(0.3, 0.7) * lane.length
        lo, hi = PLAYER_MARGIN + 20, WORLD_SIZE - PLAYER_MARGIN - 20
        self.px, self.py = (_clamp(float(v), lo, hi) for v in lane.xy(s, self.rng.uniform(-50, 50)))
        self.facing = int(self.rng.integers(1, 9))
        self.move = 0

    # -- public state
    @property
    def player_world_position(self) -> tuple[float, float]:
        return (self.px, self.py)

    def move_keeps_inside(self, move: int, frames: int = 1) -> bool:
        vx, vy = MOVE_VECTORS[move] * self.speed * self.dt * frames
        lo, hi = PLAYER_MARGIN, WORLD_SIZE - PLAYER_MARGIN
        return lo <= self.px + vx <= hi and lo <= self.py + vy <= hi

    def minion_positions(self, team: int | None = None) -> np.ndarray:
        """(n, 2) world positions of the alive minions (of `team` +1 blue / -1 red when given)."""
        idx = np.flatnonzero(self.m_alive & ((self.m_team == team) if team is not None else True))
        return self._minion_xy(idx)

    def _minion_xy(self, idx: np.ndarray) -> np.ndarray:
        return self.m_xy[idx]

    def _refresh_minion_xy(self) -> None:
        for li, lane in enumerate(self.lanes):
            sel = np.flatnonzero(self.m_alive & (self.m_lane == li))
            if len(sel):
                self.m_xy[sel] = lane.xy(self.m_s[sel], self.m_lat[sel])

    # -- one frame
    def play(self, move: int, ability: int) -> np.ndarray:
        self.apply_action(move, ability)
        frame = self.render()
        self.advance()
        return frame

    def apply_action(self, move: int, ability: int) -> None:
        """Instant part of frame i's action: facing, and the cast (effect + cooldown start) shown in frame i."""
        if not (0 <= move <= 8 and 0 <= ability <= 4):
            raise ValueError(f"demo action move={move} ability={ability} out of range (move 0..8, ability 0..4)")
        self.move = int(move)
        if move:
            self.facing = int(move)
        if ability:
            k = ability - 1
            if self.cooldown[k] > 0:
                raise ValueError(f"demo ability {ability} cast while on cooldown ({self.cooldown[k]} frames left)")
            self.cooldown[k] = self.cooldown_total[k]
            self.mana = max(0.0, self.mana - (8, 12, 10, 25)[k])
            self._cast(k)

    def advance(self) -> None:
        vx, vy = MOVE_VECTORS[self.move] * self.speed * self.dt
        # The policy only picks moves that stay inside; the clamp is a safety net for hand-driven games.
        self.px = float(_clamp(self.px + vx, PLAYER_MARGIN, WORLD_SIZE - PLAYER_MARGIN))
        self.py = float(_clamp(self.py + vy, PLAYER_MARGIN, WORLD_SIZE - PLAYER_MARGIN))
        self.cooldown = np.maximum(self.cooldown - 1, 0)
        self.mana = min(100.0, self.mana + 4.0 * self.dt)
        self._advance_effects()
        self._advance_world(record_effects=True)
        near_red = self._count_near(self.px, self.py, 150.0, team=-1)
        self.hp = float(_clamp(self.hp + (2.0 - 2.5 * near_red) * self.dt, 12.0, 100.0))
        self.frame_index += 1

    # -- abilities
    def _cast(self, k: int) -> None:
        fx, fy = MOVE_VECTORS[self.facing]
        color = ABILITY_COLORS[k]
        life = max(2, round(0.18 * self.fps))
        self.effects.append(_Effect("cast_flash", 0, life, self.px, self.py, color=color))
        if k == 0:  # orb: flies out and comes back to the champion
            self.effects.append(_Effect("orb", 0, 2 * max(2, round(0.35 * self.fps)), self.px, self.py, fx, fy, color))
        elif k == 1:  # fox-fires orbiting the champion
            self.effects.append(_Effect("foxfire", 0, max(2, round(1.5 * self.fps)), self.px, self.py, color=color))
        elif k == 2:  # charm: a straight projectile that stops on the first enemy minion
            self.effects.append(_Effect("charm", 0, max(2, round(0.5 * self.fps)), self.px, self.py, fx, fy, color))
        else:  # burst: an expanding golden ring
            self.effects.append(_Effect("burst", 0, max(2, round(0.45 * self.fps)), self.px, self.py, color=color))

    def _orb_position(self, e: _Effect) -> tuple[float, float]:
        half = e.life // 2
        if e.age <= half:
            f = e.age / half
            return e.x + e.dx * 420 * f, e.y + e.dy * 420 * f
        tx, ty = e.x + e.dx * 420, e.y + e.dy * 420
        f = (e.age - half) / half
        return tx + (self.px - tx) * f, ty + (self.py - ty) * f

    def _effect_position(self, e: _Effect) -> tuple[float, float]:
        if e.kind == "orb":
            return self._orb_position(e)
        if e.kind == "charm":
            f = e.age / e.life
            return e.x + e.dx * 520 * f, e.y + e.dy * 520 * f
        if e.kind in ("cast_flash", "foxfire", "burst"):
            return self.px, self.py
        if e.kind == "tower_shot":
            f = min(1.0, e.age / e.life)
            return e.x + (e.dx - e.x) * f, e.y + (e.dy - e.y) * f
        return e.x, e.y

    def _advance_effects(self) -> None:
        alive = []
        for e in self.effects:
            e.age += 1
            if e.kind in ("orb", "charm", "foxfire", "burst"):
                self._effect_hits(e)
            if e.kind == "tower_shot" and e.age == e.life and self.m_alive[e.target]:
                self._damage(np.array([e.target]), 55.0)
            if e.age < e.life:
                alive.append(e)
        self.effects = alive

    def _effect_hits(self, e: _Effect) -> None:
        idx = np.flatnonzero(self.m_alive & (self.m_team == -1))
        if len(idx) == 0:
            return
        xy = self._minion_xy(idx)
        if e.kind == "foxfire":
            ang = e.age * 0.25 + np.arange(3) * 2 * np.pi / 3
            pts = np.stack([self.px + 58 * np.cos(ang), self.py + 58 * np.sin(ang)], 1)
            d = np.min(np.hypot(xy[:, None, 0] - pts[None, :, 0], xy[:, None, 1] - pts[None, :, 1]), axis=1)
            self._damage(idx[d < 22], 1.2)
            return
        x, y = self._effect_position(e)
        d = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
        if e.kind == "burst":
            if e.age == e.life - 1:
                self._damage(idx[d < 190], 60.0)
            return
        hit = [i for i in idx[d < (30 if e.kind == "orb" else 24)] if i not in e.hit]
        if hit:
            e.hit.update(hit)
            self._damage(np.array(hit), 40.0)
            if e.kind == "charm":
                self.effects.append(_Effect("spark", 0, max(2, round(0.25 * self.fps)), x, y, color=e.color))
                e.age = e.life  # the charm stops on its first hit

    # -- minions and towers
    def _count_near(self, x: float, y: float, r: float, team: int) -> int:
        xy = self.minion_positions(team)
        return int(np.count_nonzero(np.hypot(xy[:, 0] - x, xy[:, 1] - y) < r))

    def _damage(self, idx: np.ndarray, amount: float) -> None:
        if len(idx) == 0:
            return
        self.m_hp[idx] -= amount
        dead = idx[(self.m_hp[idx] <= 0) & self.m_alive[idx]]
        if len(dead):
            for x, y in self._minion_xy(dead):
                self.effects.append(_Effect("puff", 0, max(2, round(0.3 * self.fps)), float(x), float(y)))
            self.m_alive[dead] = False

    def _spawn_waves(self) -> None:
        lateral = (-26.0, 26.0, -9.0, 9.0, 0.0)
        for li, lane in enumerate(self.lanes):
            for team in (1, -1):
                if np.count_nonzero(self.m_alive & (self.m_lane == li) & (self.m_team == team)) > 12:
                    continue
                free = np.flatnonzero(~self.m_alive)[:5]
                for j, i in enumerate(free):
                    back = 20.0 + 24.0 * j
                    self.m_alive[i], self.m_lane[i], self.m_team[i] = True, li, team
                    self.m_s[i] = back if team == 1 else lane.length - back
                    self.m_lat[i] = lateral[j] + self.rng.uniform(-4, 4)
                    self.m_hp[i] = 100.0
                    self.m_timer[i] = self.rng.uniform(0.2, 1.0)
        self._refresh_minion_xy()

    def _advance_world(self, record_effects: bool) -> None:
        dt = self.dt
        self.sim_t += dt
        if self.sim_t >= self.next_wave_t:
            self._spawn_waves()
            self.next_wave_t += 12.0
        towers = self.world.towers
        for li, lane in enumerate(self.lanes):
            idx = np.flatnonzero(self.m_alive & (self.m_lane == li))
            if len(idx) == 0:
                continue
            s, team = self.m_s[idx], self.m_team[idx]
            ahead = (s[None, :] - s[:, None]) * team[:, None]  # how far minion j is ahead of minion i
            enemy = team[None, :] != team[:, None]
            ahead = np.where(enemy & (ahead > -15), ahead, np.inf)
            target = np.argmin(ahead, axis=1)
            engaged = ahead[np.arange(len(idx)), target] < 45
            sieging = np.zeros(len(idx), bool)
            for t_s, t_team in self.lane_towers[li]:
                to_tower = (t_s - s) * team
                sieging |= (team != t_team) & (to_tower > -20) & (to_tower < 175)
            walking = ~engaged & ~sieging
            self.m_s[idx[walking]] += team[walking] * 75.0 * dt
            self.m_timer[idx] -= dt
            attack = (engaged | sieging) & (self.m_timer[idx] <= 0)
            self.m_timer[idx[attack]] = 1.0
            hits = attack & engaged
            if hits.any():
                self._damage(idx[target[hits]], self.rng.uniform(9, 14))
                if record_effects:
                    for x, y in self._minion_xy(idx[target[hits]]):
                        self.effects.append(_Effect("spark", 0, 3, float(x), float(y), color=(255, 240, 150)))
        self._refresh_minion_xy()
        # Towers shoot the nearest enemy minion in range.
        if self.sim_t >= self.next_tower_t:
            self.next_tower_t += 0.9
            for t, li in zip(towers, self.tower_lane):
                t_team = 1 if t.team == "blue" else -1
                idx = np.flatnonzero(self.m_alive & (self.m_lane == li) & (self.m_team == -t_team))
                if len(idx) == 0:
                    continue
                xy = self._minion_xy(idx)
                d = np.hypot(xy[:, 0] - t.xy[0], xy[:, 1] - t.xy[1])
                j = int(np.argmin(d))
                if d[j] < 240:
                    if record_effects:
                        self.effects.append(_Effect("tower_shot", 0, max(2, round(0.25 * self.fps)), t.xy[0],
                                                    t.xy[1] - 20, float(xy[j, 0]), float(xy[j, 1]),
                                                    color=(255, 190, 80), target=int(idx[j])))
                    else:
                        self._damage(idx[j:j + 1], 55.0)

    # -- rendering
    def render(self) -> np.ndarray:
        W, H = self.width, self.height
        pad = self.world.pad
        cam_x, cam_y = int(round(self.px)) - W // 2, int(round(self.py)) - H // 2
        frame = self.world.image[cam_y + pad:cam_y + pad + H, cam_x + pad:cam_x + pad + W].copy()
        sprites = _sprites()

        for e in self.effects:  # ground effects under the units
            if e.kind == "burst":
                f = e.age / e.life
                blend_ring(frame, self.px - cam_x, self.py - cam_y, 30 + 160 * f, 10, e.color, 0.85 * (1 - 0.5 * f))
            elif e.kind == "puff":
                f = e.age / e.life
                blend_disc(frame, e.x - cam_x, e.y - cam_y, 8 + 10 * f, (170, 170, 170), 0.7 * (1 - f))
        idx = np.flatnonzero(self.m_alive)
        xy = self._minion_xy(idx)
        sx, sy = xy[:, 0] - cam_x, xy[:, 1] - cam_y
        visible = (sx > -30) & (sx < W + 30) & (sy > -30) & (sy < H + 30)
        for j in np.flatnonzero(visible)[np.argsort(sy[visible], kind="stable")]:
            i = idx[j]
            team = "blue" if self.m_team[i] == 1 else "red"
            sprites["minion_" + team].blit(frame, sx[j], sy[j])
            bx, by = int(round(sx[j])) - 10, int(round(sy[j])) - 17
            fill_rect(frame, bx - 1, by - 1, 22, 5, (15, 15, 15))
            fill_rect(frame, bx, by, int(round(20 * max(self.m_hp[i], 0) / 100)), 3, TEAM_COLORS[team])

        cx, cy = W // 2, H // 2  # the champion: always at the screen centre
        sprites["player"].blit(frame, cx, cy)
        fx, fy = MOVE_VECTORS[self.facing]
        for k in (1.0, 1.4, 1.8):  # tails trail behind the facing direction
            sprites["tail"].blit(frame, cx - fx * 11 * k, cy - fy * 11 * k + 2)
        sprites["face"].blit(frame, cx + fx * 7, cy + fy * 7)
        fill_rect(frame, cx - 31, cy - 41, 62, 8, (10, 10, 10))
        fill_rect(frame, cx - 30, cy - 40, int(round(60 * self.hp / 100)), 6, (70, 210, 80))

        for e in self.effects:  # projectiles and flashes above the units
            x, y = self._effect_position(e)
            x, y = x - cam_x, y - cam_y
            if e.kind == "cast_flash":
                f = e.age / e.life
                blend_ring(frame, x, y, 24 + 14 * f, 5, e.color, 0.9 * (1 - f))
            elif e.kind == "orb":
                blend_disc(frame, x, y, 15, e.color, 0.45)
                sprites["orb"].blit(frame, x, y)
            elif e.kind == "charm":
                blend_disc(frame, x, y, 13, e.color, 0.5)
                sprites["charm"].blit(frame, x, y)
            elif e.kind == "foxfire":
                for a in e.age * 0.25 + np.arange(3) * 2 * np.pi / 3:
                    sprites["foxfire"].blit(frame, x + 58 * np.cos(a), y + 58 * np.sin(a))
            elif e.kind == "tower_shot":
                sprites["tower_shot"].blit(frame, x, y)
            elif e.kind == "spark":
                blend_disc(frame, x, y, 6 * (1 - e.age / e.life) + 2, e.color, 0.9)
        self._render_hud(frame)
        return frame

    def _render_hud(self, frame: np.ndarray) -> None:
        mx, my, mw, mh = self.hud["minimap"]
        mm = _minimap_base(mw, mh).copy()
        ix, iy, iw, ih = _minimap_inner(mw, mh)
        idx = np.flatnonzero(self.m_alive)
        xy = self._minion_xy(idx)
        ux = np.clip((ix + xy[:, 0] / WORLD_SIZE * iw).astype(np.int64), ix, ix + iw - 2)
        uy = np.clip((iy + xy[:, 1] / WORLD_SIZE * ih).astype(np.int64), iy, iy + ih - 2)
        team_rgb = np.where((self.m_team[idx] == 1)[:, None], (60, 110, 220), (200, 55, 45))
        for ddx in (0, 1):
            for ddy in (0, 1):
                mm[uy + ddy, ux + ddx] = team_rgb
        # Camera view rectangle (dim grey, 1 px) and the player's marker (white square, dark outline).
        vx0 = ix + (self.px - self.width / 2) / WORLD_SIZE * iw
        vy0 = iy + (self.py - self.height / 2) / WORLD_SIZE * ih
        vw, vh = self.width / WORLD_SIZE * iw, self.height / WORLD_SIZE * ih
        _rect_outline(mm, vx0, vy0, vw, vh, (150, 150, 150), (ix, iy, iw, ih))
        mkx, mky = minimap_marker_position((self.px, self.py), self.width, self.height)
        _draw_marker(mm, mkx - mx, mky - my, _marker_size(self.width, self.height))
        frame[my:my + mh, mx:mx + mw] = mm

        ax, ay, aw, ah = self.hud["abilities_health"]
        layout = _icon_layout(aw, ah)
        (hx, hy, hw, hh), (nx, ny, nw, nh) = _bar_layout(aw, ah)
        # The panel only changes when a cooldown sweep row or a bar pixel changes: cache it by that state.
        sweep = tuple(int(round(size * self.cooldown[k] / self.cooldown_total[k])) if self.cooldown[k] > 0 else -1
                      for k, (_, _, size) in enumerate(layout))
        key = (aw, ah, sweep, int(round(hw * self.hp / 100)), int(round(nw * self.mana / 100)))
        panel = self._panel_cache.get(key)
        if panel is None:
            panel = _panel_base(aw, ah).copy()
            for k, (x0, y0, size) in enumerate(layout):
                if sweep[k] >= 0:
                    grey = _icon_art(size, k, greyed=True).copy()
                    grey[:sweep[k]] = (grey[:sweep[k]] * 0.6).astype(np.uint8)  # the sweep shows time left
                    panel[y0:y0 + size, x0:x0 + size] = grey
                else:
                    panel[y0:y0 + size, x0:x0 + size] = _icon_art(size, k, greyed=False)
            fill_rect(panel, hx, hy, key[3], hh, (60, 200, 70))
            fill_rect(panel, nx, ny, key[4], nh, (60, 110, 235))
            if len(self._panel_cache) > 256:
                self._panel_cache.clear()
            self._panel_cache[key] = panel
        frame[ay:ay + ah, ax:ax + aw] = panel


# ------------------------------------------------------------------------------------------ sprites and HUD parts

_SPRITES: dict | None = None


def _sprites() -> dict[str, Sprite]:
    global _SPRITES
    if _SPRITES is None:
        s = {}
        for team, color in TEAM_COLORS.items():
            c = np.asarray(color, np.float32)
            s["minion_" + team] = (Sprite(12).disc(2, 3, 10, (15, 25, 15), 0.45).disc(0, 0, 10, c * 0.35)
                                   .disc(0, 0, 8.5, c).disc(-3, -3, 3, np.minimum(c + 90, 255)))
        s["player"] = (Sprite(28).ring(0, 3, 23, 3.5, (80, 230, 110), 0.9)
                       .disc(3, 6, 18, (10, 20, 10), 0.5).disc(0, 0, 16, (45, 15, 45))
                       .disc(0, 0, 14, (205, 75, 165)).disc(-4, -5, 5, (245, 170, 225)))
        s["tail"] = Sprite(7).disc(0, 0, 6, (250, 245, 240)).disc(-1, -1, 3, (255, 255, 255))
        s["face"] = Sprite(7).disc(0, 0, 6.5, (250, 222, 205)).disc(0, 0, 2, (90, 30, 60))
        s["orb"] = Sprite(10).disc(0, 0, 9, (90, 170, 255)).disc(-2, -2, 4.5, (235, 245, 255))
        s["charm"] = Sprite(9).disc(-3, -2, 5, (255, 105, 180)).disc(3, -2, 5, (255, 105, 180)).disc(0, 2, 5, (255, 105, 180))
        s["foxfire"] = Sprite(8).disc(0, 0, 7, (190, 90, 255)).disc(0, 0, 3.5, (245, 220, 255))
        s["tower_shot"] = Sprite(7).disc(0, 0, 6, (255, 190, 80)).disc(0, 0, 3, (255, 250, 220))
        _SPRITES = s
    return _SPRITES


def _minimap_inner(mw: int, mh: int) -> tuple[int, int, int, int]:
    b = 4 if min(mw, mh) >= 40 else 1
    return b, b, mw - 2 * b, mh - 2 * b


_HUD_CACHE: dict = {}


def _minimap_base(mw: int, mh: int) -> np.ndarray:
    key = ("minimap", mw, mh)
    if key not in _HUD_CACHE:
        img = np.empty((mh, mw, 3), np.float32)
        img[:] = (18, 20, 26)
        ix, iy, iw, ih = _minimap_inner(mw, mh)
        if ix > 1:
            img[iy - 2:iy + ih + 2, ix - 2:ix + iw + 2] = (140, 115, 60)  # gold frame line
        img[iy:iy + ih, ix:ix + iw] = minimap_image(iw, ih)
        for t in get_world().towers:
            tx, ty = ix + t.xy[0] / WORLD_SIZE * iw, iy + t.xy[1] / WORLD_SIZE * ih
            fill_rect(img, int(tx) - 1, int(ty) - 1, 3, 3, np.asarray(TEAM_COLORS[t.team]) * 0.8)
        _HUD_CACHE[key] = img.astype(np.uint8)
    return _HUD_CACHE[key]


def _marker_size(width: int, height: int) -> float:
    return max(3.0, 5.0 * min(width / HUD_REFERENCE_SIZE[0], height / HUD_REFERENCE_SIZE[1]))


def minimap_marker_position(world_xy: tuple[float, float], width: int = 640, height: int = 360) -> tuple[float, float]:
    """Where the player's minimap marker is drawn in a (width x height) frame, in continuous pixel coordinates
    (pixel (i, j) covers [i, i+1) x [j, j+1), so the centre of pixel i is i + 0.5)."""
    mx, my, mw, mh = hud_regions(width, height)["minimap"]
    ix, iy, iw, ih = _minimap_inner(mw, mh)
    return (mx + ix + world_xy[0] / WORLD_SIZE * iw, my + iy + world_xy[1] / WORLD_SIZE * ih)


_MARKER_SUBPIXEL = 16  # marker stamps are cached per 1/16 px offset


def _marker_stamp(size: float, fx: int, fy: int) -> tuple[np.ndarray, np.ndarray]:
    """(outline coverage, fill coverage) of the marker at sub-pixel offset (fx, fy)/16 inside a small patch whose
    pixel (0, 0) sits at floor(centre) - r."""
    key = ("marker", size, fx, fy)
    if key not in _HUD_CACHE:
        r = int(np.ceil(size / 2 + 1)) + 1
        cx, cy = r + fx / _MARKER_SUBPIXEL, r + fy / _MARKER_SUBPIXEL
        idx = np.arange(2 * r + 1)
        covs = []
        for side in (size + 2, size):
            half = side / 2
            cov_x = np.clip(np.minimum(idx + 1, cx + half) - np.maximum(idx, cx - half), 0, 1)
            cov_y = np.clip(np.minimum(idx + 1, cy + half) - np.maximum(idx, cy - half), 0, 1)
            covs.append((cov_y[:, None] * cov_x[None, :])[..., None].astype(np.float32))
        _HUD_CACHE[key] = (covs[0], covs[1])
    return _HUD_CACHE[key]


def _draw_marker(img: np.ndarray, cx: float, cy: float, size: float) -> None:
    """A white square of side `size` centred at continuous (cx, cy) with a 1 px dark outline, anti-aliased by
    exact pixel coverage so its centroid moves smoothly with sub-pixel positions (marker kept inside img)."""
    ix, iy = int(np.floor(cx)), int(np.floor(cy))
    fx = int(round((cx - ix) * _MARKER_SUBPIXEL))
    fy = int(round((cy - iy) * _MARKER_SUBPIXEL))
    outline, fill = _marker_stamp(size, fx, fy)
    r = (outline.shape[0] - 1) // 2
    x0, y0 = ix - r, iy - r
    sx0, sy0 = max(0, -x0), max(0, -y0)  # clip the stamp to the image (tiny minimaps only)
    sx1, sy1 = min(outline.shape[1], img.shape[1] - x0), min(outline.shape[0], img.shape[0] - y0)
    if sx0 >= sx1 or sy0 >= sy1:
        return
    view = img[y0 + sy0:y0 + sy1, x0 + sx0:x0 + sx1]
    patch = view.astype(np.float32)
    patch *= 1 - outline[sy0:sy1, sx0:sx1]
    patch += (255 - patch) * fill[sy0:sy1, sx0:sx1]
    view[:] = patch + 0.5


def _rect_outline(img, x, y, w, h, color, clip) -> None:
    cx0, cy0, cw, ch = clip
    x0, y0 = int(_clamp(round(x), cx0, cx0 + cw - 1)), int(_clamp(round(y), cy0, cy0 + ch - 1))
    x1, y1 = int(_clamp(round(x + w), cx0, cx0 + cw - 1)), int(_clamp(round(y + h), cy0, cy0 + ch - 1))
    img[y0, x0:x1 + 1] = color
    img[y1, x0:x1 + 1] = color
    img[y0:y1 + 1, x0] = color
    img[y0:y1 + 1, x1] = color


def _icon_layout(aw: int, ah: int) -> list[tuple[int, int, int]]:
    """(x, y, size) of the 4 ability icons inside the abilities_health panel (panel pixel coordinates)."""
    size = max(4, int(round(ah * 0.72)))
    gap = max(1, int(round(size * 0.18)))
    y0 = (ah - size) // 2
    x0 = max(1, int(round(aw * 0.025)))
    return [(x0 + k * (size + gap), y0, size) for k in range(4)]


def ability_icon_rects(width: int = 640, height: int = 360) -> list[tuple[int, int, int, int]]:
    """Frame-coordinate (x, y, w, h) of the 4 ability icons."""
    ax, ay, aw, ah = hud_regions(width, height)["abilities_health"]
    return [(ax + x, ay + y, s, s) for x, y, s in _icon_layout(aw, ah)]


def _bar_layout(aw: int, ah: int):
    x0, _, size = _icon_layout(aw, ah)[3]
    bx = x0 + size + max(2, int(round(aw * 0.03)))
    bw = max(2, aw - bx - max(1, int(round(aw * 0.025))))
    return ((bx, int(round(ah * 0.25)), bw, max(1, int(round(ah * 0.22)))),
            (bx, int(round(ah * 0.58)), bw, max(1, int(round(ah * 0.15)))))


def _panel_base(aw: int, ah: int) -> np.ndarray:
    key = ("panel", aw, ah)
    if key not in _HUD_CACHE:
        img = np.empty((ah, aw, 3), np.uint8)
        img[:] = (140, 115, 60)  # gold rim
        img[1:-1, 1:-1] = (14, 16, 22)
        for bx, by, bw, bh in _bar_layout(aw, ah):
            fill_rect(img, bx - 1, by - 1, bw + 2, bh + 2, (0, 0, 0))
            fill_rect(img, bx, by, bw, bh, (45, 40, 40))
        _HUD_CACHE[key] = img
    return _HUD_CACHE[key]


def _icon_art(size: int, k: int, greyed: bool) -> np.ndarray:
    key = ("icon", size, k, greyed)
    if key not in _HUD_CACHE:
        c = np.asarray(ABILITY_COLORS[k], np.float32)
        img = np.empty((size, size, 3), np.float32)
        img[:] = c * 0.3
        h = size / 2
        if k == 0:
            blend_disc(img, h, h, size * 0.3, c)
            blend_disc(img, h - size * 0.08, h - size * 0.08, size * 0.12, (235, 245, 255))
        elif k == 1:
            for a in np.arange(3) * 2 * np.pi / 3:
                blend_disc(img, h + size * 0.25 * np.cos(a), h + size * 0.25 * np.sin(a), size * 0.13, c)
        elif k == 2:
            for dx, dy in ((-0.1, -0.06), (0.1, -0.06), (0, 0.1)):
                blend_disc(img, h + dx * size, h + dy * size, size * 0.16, c)
        else:
            blend_ring(img, h, h, size * 0.3, size * 0.1, c)
        img[[0, -1], :] = img[:, [0, -1]] = (200, 180, 120)  # icon frame
        if greyed:
            luma = img @ np.asarray([0.299, 0.587, 0.114], np.float32)
            img = np.repeat((luma * 0.45 + 15)[..., None], 3, axis=-1)
        _HUD_CACHE[key] = np.clip(img, 0, 255).astype(np.uint8)
    return _HUD_CACHE[key]


# -------------------------------------------------------------------------------------------------------- policy

class ScriptedPolicy:
    """Believable scripted play: hold a direction for a random number of frames, walk to a stand-off point near
    the enemy minions (or along the lane), stop now and then, retreat towards the base when low on health, cast
    abilities when they are ready with some probability (more often near enemies)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.move = 0
        self.hold = 0
        self.standoff = 180.0  # preferred distance to the nearest enemy minion, re-drawn now and then

    def act(self, game: DemoGame) -> tuple[int, int]:
        self.hold -= 1
        if self.hold <= 0 or not game.move_keeps_inside(self.move):
            self.move, self.hold = self._choose_move(game)
        return self.move, self._choose_ability(game)

    def _choose_move(self, game: DemoGame) -> tuple[int, int]:
        rng = self.rng
        px, py = game.player_world_position
        r = rng.random()
        if game.hp < 35 and r < 0.8:
            move, hold = move_from_vector(BLUE_BASE[0] - px, BLUE_BASE[1] - py), int(rng.integers(10, 30))
        elif r < 0.1:
            return 0, int(rng.integers(6, 30))
        elif r < 0.75:
            move, hold = self._towards_minions(game)
        else:
            move, hold = int(rng.integers(1, 9)), int(rng.integers(8, 40))
        if move and not game.move_keeps_inside(move, hold):
            options = [m for m in range(1, 9) if game.move_keeps_inside(m, hold)]
            move = int(rng.choice(options)) if options else 0
        return move, hold

    def _towards_minions(self, game: DemoGame) -> tuple[int, int]:
        rng = self.rng
        px, py = game.player_world_position
        enemies = game.minion_positions(team=-1)
        step = game.speed * game.dt
        if len(enemies):
            d = np.hypot(enemies[:, 0] - px, enemies[:, 1] - py)
            j = int(np.argmin(d))
            if d[j] < 900:
                ex, ey = enemies[j]
                if rng.random() < 0.2:
                    self.standoff = rng.uniform(120, 260)
                standoff = self.standoff
                tx, ty = ex + (px - ex) / max(d[j], 1e-6) * standoff, ey + (py - ey) / max(d[j], 1e-6) * standoff
                dist = math.hypot(tx - px, ty - py)
                if dist < 45:  # close enough: hold position for a while, or strafe sideways (kiting)
                    if rng.random() < 0.5:
                        return 0, int(rng.integers(6, 18))
                    side = move_from_vector(-(ey - py), ex - px) if rng.random() < 0.5 else \
                        move_from_vector(ey - py, -(ex - px))
                    return side, int(rng.integers(8, 20))
                return move_from_vector(tx - px, ty - py), int(_clamp(dist / step, 6, int(rng.integers(10, 35))))
        # No enemy nearby: walk along the nearest lane towards the enemy side.
        lane = min(game.lanes, key=lambda ln: np.min(np.hypot(ln.table[::16, 0] - px, ln.table[::16, 1] - py)))
        near = int(np.argmin(np.hypot(lane.table[:, 0] - px, lane.table[:, 1] - py)))
        tx, ty = lane.table[min(near + 250, len(lane.table) - 1)]
        return move_from_vector(tx - px, ty - py), int(rng.integers(10, 35))

    def _choose_ability(self, game: DemoGame) -> int:
        ready = [k for k in range(4) if game.cooldown[k] == 0]
        if not ready:
            return 0
        p = 0.06 if game._count_near(game.px, game.py, 450.0, team=-1) else 0.01
        if self.rng.random() >= p:
            return 0
        return int(self.rng.choice(ready)) + 1


def play_demo(seed: int, num_frames: int, width: int = 640, height: int = 360, fps: float = 40.0,
              player_speed: float = 200.0):
    """Yield (frame uint8 HxWx3, move, ability, player world (x, y) at that frame) for frames 0..num_frames-1."""
    game = DemoGame(seed, width, height, fps, player_speed)
    policy = ScriptedPolicy(np.random.default_rng([seed, 1]))
    for _ in range(num_frames):
        move, ability = policy.act(game)
        pos = game.player_world_position
        frame = game.play(move, ability)
        yield frame, move, ability, pos


# ------------------------------------------------------------------------------------------------ video writing

def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _config_fingerprint(cfg: DemoConfig, seed: int) -> dict:
    d = dataclasses.asdict(cfg)
    d.pop("num_videos")
    d["video_seed"] = seed
    d["version"] = DEMO_GAME_VERSION
    return d


def write_demo_video(mp4_path: Path, cfg: DemoConfig, seed: int) -> Path:
    """Render one demo video + its actions sidecar (`<stem>.actions.json`), both written atomically: the sidecar
    first, the mp4 last, so an existing mp4 means the pair is complete."""
    import av

    mp4_path = Path(mp4_path)
    sidecar = mp4_path.with_name(mp4_path.stem + ".actions.json")
    n = cfg.num_frames
    if n < 1:
        raise ValueError(f"demo video {mp4_path}: duration_s={cfg.duration_s} at fps={cfg.fps} gives no frames")
    records, positions = [], []
    with atomic_path(mp4_path) as tmp_mp4:  # renamed last: an existing mp4 means the pair is complete
        with av.open(str(tmp_mp4), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=_fps_fraction(cfg.fps))
            stream.width, stream.height, stream.pix_fmt = cfg.width, cfg.height, "yuv420p"
            stream.options = {"preset": cfg.preset, "crf": str(cfg.crf)}
            # Encode on a worker thread (PyAV releases the GIL in libav calls) while the next frame renders.
            pending: queue.Queue = queue.Queue(maxsize=8)
            errors: list[BaseException] = []

            def encode_worker():
                got_end = False
                try:
                    while (item := pending.get()) is not None:
                        vf = av.VideoFrame.from_ndarray(item[1], format="rgb24")
                        vf.pts = item[0]
                        container.mux(stream.encode(vf))
                    got_end = True
                    container.mux(stream.encode(None))
                except BaseException as e:  # surfaced in the main thread below
                    errors.append(e)
                    while not got_end and pending.get() is not None:  # drain so the producer never blocks
                        pass

            worker = threading.Thread(target=encode_worker, name=f"encode-{mp4_path.stem}", daemon=True)
            worker.start()
            try:
                for i, (frame, move, ability, pos) in enumerate(
                        play_demo(seed, n, cfg.width, cfg.height, cfg.fps, cfg.player_speed)):
                    records.append({"t": i / cfg.fps, "move": move, "ability": ability})
                    positions.append([round(pos[0], 3), round(pos[1], 3)])
                    if errors:
                        break
                    pending.put((i, frame))
            finally:
                pending.put(None)
                worker.join()
            if errors:
                raise RuntimeError(f"encoding demo video {mp4_path} failed: {errors[0]}") from errors[0]
        payload = {"fps": cfg.fps, "components": ACTION_COMPONENTS, "num_classes": ACTION_NUM_CLASSES,
                   "frames": records, "player_world_xy": positions, "demo": _config_fingerprint(cfg, seed)}
        write_json(sidecar, payload, indent=None)
    return mp4_path


def _is_complete(mp4_path: Path, cfg: DemoConfig, seed: int) -> bool:
    sidecar = mp4_path.with_name(mp4_path.stem + ".actions.json")
    if not (mp4_path.exists() and sidecar.exists()):
        return False
    try:
        return json.loads(sidecar.read_text()).get("demo") == _config_fingerprint(cfg, seed)
    except (OSError, ValueError):
        return False


def demo_video_paths(out_dir: Path, cfg: DemoConfig = DemoConfig()) -> list[Path]:
    """Where the demo's videos live: out_dir/demo_000.mp4 ... demo_{n-1}.mp4 (each with `<stem>.actions.json`)."""
    return [Path(out_dir) / f"demo_{k:03d}.mp4" for k in range(cfg.num_videos)]


def _demo_seed(mp4_path: Path, cfg: DemoConfig) -> int:
    """Video k (demo_<k>.mp4) uses seed cfg.seed*1000+k."""
    stem = Path(mp4_path).stem
    index = stem.removeprefix("demo_")
    if not (stem.startswith("demo_") and index.isdigit()):
        raise ValueError(f"{mp4_path} is not a demo video path (demo_<index>.mp4)")
    return cfg.seed * 1000 + int(index)


def discard_stale_demo_videos(out_dir: Path, cfg: DemoConfig = DemoConfig(), log=print) -> None:
    """Delete the demo videos rendered with other settings (a cheap look at each sidecar), so that
    `ensure_demo_video` renders them again; complete, current ones stay."""
    for path in demo_video_paths(out_dir, cfg):
        if path.exists() and not _is_complete(path, cfg, _demo_seed(path, cfg)):
            path.with_name(path.stem + ".actions.json").unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            log(f"demo video {path} was rendered with other settings: removed, rendered again when fetched")


def ensure_demo_video(mp4_path: Path, cfg: DemoConfig = DemoConfig(), log=print) -> Path:
    """Render one demo video (and its sidecar) unless it is there; the mp4 is renamed into place last, so one that
    exists is complete."""
    mp4_path = Path(mp4_path)
    seed = _demo_seed(mp4_path, cfg)
    if mp4_path.exists() and mp4_path.with_name(mp4_path.stem + ".actions.json").exists():
        return mp4_path
    mp4_path.parent.mkdir(parents=True, exist_ok=True)
    write_demo_video(mp4_path, cfg, seed)
    log(f"demo video {mp4_path} written ({cfg.num_frames} frames, seed {seed})")
    return mp4_path


def write_demo_videos(out_dir: Path, cfg: DemoConfig = DemoConfig(), log=print) -> list[Path]:
    """Write out_dir/demo_000.mp4 (+ demo_000.actions.json) ... demo_{n-1}; video k uses seed cfg.seed*1000+k.
    Idempotent: a video whose mp4 and sidecar exist and were made with the same settings is skipped."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for path in demo_video_paths(out_dir, cfg):
        seed = _demo_seed(path, cfg)
        if _is_complete(path, cfg, seed):
            log(f"demo video {path} exists, skipped")
        else:
            write_demo_video(path, cfg, seed)
            log(f"demo video {path} written ({cfg.num_frames} frames, seed {seed})")
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------ analysis helpers

def find_minimap_marker(frame: np.ndarray, width: int | None = None, height: int | None = None) -> tuple[float, float]:
    """(x, y) of the player's minimap marker in `frame` (HxWx3 uint8, rendered or decoded, possibly resized), in
    continuous pixel coordinates (see `minimap_marker_position`). The HUD layout scales with the frame, so the
    frame's own shape locates the minimap. By default (x, y) are in the frame's pixels; with width and height
    given they are rescaled to a width x height frame (e.g. 640, 360 for a frame resized from a 640x360 render)."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"find_minimap_marker: expected an HxWx3 frame, got shape {frame.shape}")
    h, w = frame.shape[:2]
    x, y = _find_marker(frame)
    if width is not None and height is not None:
        return x * width / w, y * height / h
    return x, y


def _find_marker(frame: np.ndarray) -> tuple[float, float]:
    h, w = frame.shape[:2]
    mx, my, mw, mh = hud_regions(w, h)["minimap"]
    luma = frame[my:my + mh, mx:mx + mw].astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], np.float32)
    k = max(1, int(round(_marker_size(w, h))))
    # Box-filter so the k x k marker beats any single bright pixel (minion dots, the view rectangle's lines).
    c = np.cumsum(np.cumsum(np.pad(luma, ((1, 0), (1, 0))), 0), 1)
    box = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    by, bx = np.unravel_index(int(np.argmax(box)), box.shape)
    r = k // 2 + 2
    y0, x0 = max(0, by + k // 2 - r), max(0, bx + k // 2 - r)
    win = luma[y0:by + k // 2 + r + 1, x0:bx + k // 2 + r + 1]
    weights = np.clip(win - 0.5 * (win.max() + np.median(luma)), 0, None)
    ys, xs = np.mgrid[0:win.shape[0], 0:win.shape[1]]
    total = weights.sum()
    return (float(mx + x0 + (weights * (xs + 0.5)).sum() / total), float(my + y0 + (weights * (ys + 0.5)).sum() / total))


def scroll_ignore_mask(h: int, w: int) -> np.ndarray:
    """(H, W) uint8, 1 where the picture does not move with the map: the HUD regions and the champion sprite
    (with its bar and orbiting fox-fires), which the camera keeps at the screen centre."""
    mask = np.zeros((h, w), np.uint8)
    sx, sy = w / HUD_REFERENCE_SIZE[0], h / HUD_REFERENCE_SIZE[1]
    rects = list(hud_regions(w, h).values()) + [(w / 2 - 72 * sx, h / 2 - 72 * sy, 144 * sx, 144 * sy)]
    for x, y, rw, rh in rects:
        mask[max(0, int(round(y))):int(round(y + rh)), max(0, int(round(x))):int(round(x + rw))] = 1
    return mask


def estimate_scroll(frame_a: np.ndarray, frame_b: np.ndarray) -> tuple[float, float]:
    """The map's apparent motion (dx, dy) in pixels from frame_a to frame_b (content at x in frame_a appears at
    x + dx in frame_b): `motion.estimate_shift` over the game area, HUD and champion faded out. When the
    player moves by v, the map scrolls by about -v. Works on resized frames too (the layout scales)."""
    if frame_a.shape != frame_b.shape or frame_a.ndim != 3 or frame_a.shape[2] != 3:
        raise ValueError(f"estimate_scroll: frames must be HxWx3 of equal shape, got {frame_a.shape}, {frame_b.shape}")
    h, w = frame_a.shape[:2]
    key = ("scroll_weights", h, w)
    if key not in _HUD_CACHE:
        _HUD_CACHE[key] = motion_weights(h, w, scroll_ignore_mask(h, w))
    return estimate_shift(frame_a, frame_b, _HUD_CACHE[key])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m ahriuwu_core.demo_game", description="Write the demo game videos.")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--num-videos", type=int, default=DemoConfig.num_videos)
    p.add_argument("--duration", type=float, default=DemoConfig.duration_s, help="seconds per video")
    p.add_argument("--fps", type=float, default=DemoConfig.fps)
    p.add_argument("--width", type=int, default=DemoConfig.width)
    p.add_argument("--height", type=int, default=DemoConfig.height)
    p.add_argument("--seed", type=int, default=DemoConfig.seed)
    args = p.parse_args(argv)
    cfg = DemoConfig(num_videos=args.num_videos, duration_s=args.duration, fps=args.fps, width=args.width,
                     height=args.height, seed=args.seed)
    write_demo_videos(args.out_dir, cfg)


if __name__ == "__main__":
    main()
