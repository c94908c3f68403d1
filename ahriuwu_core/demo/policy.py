"""The scripted player of the demo game, and `play_demo`: a game played by it, frame by frame."""

from __future__ import annotations

import math

import numpy as np

from ahriuwu_core.data.conventions import move_from_vector
from ahriuwu_core.demo.game import DemoGame
from ahriuwu_core.demo.map import BLUE_BASE, clamp


class ScriptedPolicy:
    """Believable scripted play: hold a direction for a random number of frames, walk to a stand-off point near
    the enemy minions (or along the lane), stop now and then, retreat towards the base when low on health, cast
    abilities when they are ready with some probability (more often near enemies), at most one per CAST_GAP_S."""

    # A cast animation: casts are further apart than a 20 fps output frame, so each one keeps its own label.
    CAST_GAP_S = 0.25

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.move = 0
        self.hold = 0
        self.standoff = 180.0  # preferred distance to the nearest enemy minion, re-drawn now and then
        self.last_cast = -(10**9)  # frame index of the last cast

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
                    side = (
                        move_from_vector(-(ey - py), ex - px)
                        if rng.random() < 0.5
                        else move_from_vector(ey - py, -(ex - px))
                    )
                    return side, int(rng.integers(8, 20))
                return move_from_vector(tx - px, ty - py), int(clamp(dist / step, 6, int(rng.integers(10, 35))))
        # No enemy nearby: walk along the nearest lane towards the enemy side.
        lane = min(game.lanes, key=lambda ln: np.min(np.hypot(ln.table[::16, 0] - px, ln.table[::16, 1] - py)))
        near = int(np.argmin(np.hypot(lane.table[:, 0] - px, lane.table[:, 1] - py)))
        tx, ty = lane.table[min(near + 250, len(lane.table) - 1)]
        return move_from_vector(tx - px, ty - py), int(rng.integers(10, 35))

    def _choose_ability(self, game: DemoGame) -> int:
        ready = [k for k in range(4) if game.cooldown[k] == 0]
        if not ready or game.frame_index - self.last_cast < self.CAST_GAP_S * game.fps:
            return 0
        p = 0.06 if game._count_near(game.px, game.py, 450.0, team=-1) else 0.01
        if self.rng.random() >= p:
            return 0
        self.last_cast = game.frame_index
        return int(self.rng.choice(ready)) + 1


def play_demo(
    seed: int, num_frames: int, width: int = 640, height: int = 360, fps: float = 40.0, player_speed: float = 200.0
):
    """Yield (frame uint8 HxWx3, move, ability, player world (x, y) at that frame) for frames 0..num_frames-1."""
    game = DemoGame(seed, width, height, fps, player_speed)
    policy = ScriptedPolicy(np.random.default_rng([seed, 1]))
    for _ in range(num_frames):
        move, ability = policy.act(game)
        pos = game.player_world_position
        frame = game.play(move, ability)
        yield frame, move, ability, pos
