"""The demo game's state and simulation: a small, deterministic top-down MOBA (a League-of-Legends-replay
look-alike). `DemoGame.play(move, ability)` renders the frame (`render`), then applies its action and advances.

The camera is locked on the player champion (always drawn at the screen centre) who walks over a 2048x2048
textured map (lanes, river, rock walls, trees, towers, bases; see `map`) with 8-direction moves, casts 4
abilities with visible effects and cooldowns, while minion waves walk and fight along the three lanes. A HUD
(`hud`) shows a minimap, health/mana bars and 4 ability icons (greyed while on cooldown). The seed makes
everything reproducible (same seed -> byte-identical frames and actions).

Action timing (the sidecar side of `ahriuwu_core.data.conventions`): the action recorded at time i/fps is chosen
from the state frame i shows and acts between frame i and frame i+1, so frame i+1 is the first to show it:
  - frame i shows the player at position p_i, with the facing and the casts of the actions before i;
  - the move: p_{i+1} = p_i + speed/fps * dir(move_i) (diagonals normalised, so every non-zero move covers
    speed/fps world px per frame), and frame i+1 faces that way;
  - the cast: frame i+1 shows its effect's first moment and its icon greyed (full cooldown);
  - the policy never steers into the world border, so the recorded move is always the motion that happens;
  - the camera follows the rounded position, so the on-screen scroll per frame is a whole number of pixels
    (5 at 200 px/s and 40 fps; 3 or 4 per axis on diagonals) summing to the exact motion;
  - 40 fps: the frames stage's 20 fps shows every second source frame, so a held move scrolls the same distance
    in every output frame (a 30 fps source alternates 1- and 2-frame steps, 33 and 67 ms), and both source
    frames' actions fall inside the output frame's interval.
Coordinates: world px with y down.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ahriuwu_core.data.conventions import MOVE_VECTORS
from ahriuwu_core.demo.hud import ABILITY_COLORS, hud_regions
from ahriuwu_core.demo.map import WORLD_PAD, WORLD_SIZE, clamp, get_world
from ahriuwu_core.demo.render import render_frame

DEMO_GAME_VERSION = 4  # bump when the rendering or the simulation changes: existing demo videos are regenerated
ACTION_COMPONENTS = ["move", "ability"]
ACTION_NUM_CLASSES = [9, 5]
ABILITY_COOLDOWN_S = (1.6, 3.5, 5.0, 9.0)
PLAYER_MARGIN = 140.0  # the policy keeps the player at least this far from the world's edge


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
        self.hud_panel_cache: dict = {}  # see render.draw_hud
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
        self.lane_towers = [
            [(t.s, 1 if t.team == "blue" else -1) for t in self.world.towers if t.lane == name] for name in lane_names
        ]
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
        self.px, self.py = (clamp(float(v), lo, hi) for v in lane.xy(s, self.rng.uniform(-50, 50)))
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
        """Render frame i (the state before this action), then apply the action and advance to frame i+1."""
        self._check_action(move, ability)
        frame = self.render()
        self._step(move, ability)
        return frame

    def _check_action(self, move: int, ability: int) -> None:
        if not (0 <= move <= 8 and 0 <= ability <= 4):
            raise ValueError(f"demo action move={move} ability={ability} out of range (move 0..8, ability 0..4)")
        if ability and self.cooldown[ability - 1] > 0:
            left = self.cooldown[ability - 1]
            raise ValueError(f"demo ability {ability} cast while on cooldown ({left} frames left)")

    def _step(self, move: int, ability: int) -> None:
        """Frame i's action acts between frame i and frame i+1: everything it changes first shows in frame i+1."""
        self.move = int(move)
        if move:
            self.facing = int(move)
        vx, vy = MOVE_VECTORS[self.move] * self.speed * self.dt
        # The policy only picks moves that stay inside; the clamp is a safety net for hand-driven games.
        self.px = float(clamp(self.px + vx, PLAYER_MARGIN, WORLD_SIZE - PLAYER_MARGIN))
        self.py = float(clamp(self.py + vy, PLAYER_MARGIN, WORLD_SIZE - PLAYER_MARGIN))
        self.cooldown = np.maximum(self.cooldown - 1, 0)
        self.mana = min(100.0, self.mana + 4.0 * self.dt)
        self._advance_effects()
        self._advance_world(record_effects=True)
        near_red = self._count_near(self.px, self.py, 150.0, team=-1)
        self.hp = float(clamp(self.hp + (2.0 - 2.5 * near_red) * self.dt, 12.0, 100.0))
        if ability:  # cast last, so frame i+1 shows the cast's first moment (effect age 0, full cooldown)
            k = ability - 1
            self.cooldown[k] = self.cooldown_total[k]
            self.mana = max(0.0, self.mana - (8, 12, 10, 25)[k])
            self._cast(k)
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

    def effect_position(self, e: _Effect) -> tuple[float, float]:
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
        x, y = self.effect_position(e)
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
        for li in range(len(self.lanes)):
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
                        self.effects.append(
                            _Effect(
                                "tower_shot",
                                0,
                                max(2, round(0.25 * self.fps)),
                                t.xy[0],
                                t.xy[1] - 20,
                                float(xy[j, 0]),
                                float(xy[j, 1]),
                                color=(255, 190, 80),
                                target=int(idx[j]),
                            )
                        )
                    else:
                        self._damage(idx[j : j + 1], 55.0)

    # -- rendering
    def render(self) -> np.ndarray:
        return render_frame(self)
