"""Drawing a frame of the demo game: the map under the camera, minions, the champion, effects, and the HUD."""

from __future__ import annotations

import numpy as np

from ahriuwu_core.data.conventions import MOVE_VECTORS
from ahriuwu_core.demo.hud import (
    bar_layout,
    draw_marker,
    icon_art,
    icon_layout,
    marker_size,
    minimap_base,
    minimap_inner,
    minimap_marker_position,
    panel_base,
    rect_outline,
)
from ahriuwu_core.demo.map import TEAM_COLORS, WORLD_SIZE, Sprite, blend_disc, blend_ring, fill_rect


def render_frame(game) -> np.ndarray:
    """The frame `game` shows now: the map under the camera, units, effects, the HUD."""
    W, H = game.width, game.height
    pad = game.world.pad
    cam_x, cam_y = int(round(game.px)) - W // 2, int(round(game.py)) - H // 2
    frame = game.world.image[cam_y + pad : cam_y + pad + H, cam_x + pad : cam_x + pad + W].copy()
    sprites = _sprites()

    for e in game.effects:  # ground effects under the units
        if e.kind == "burst":
            f = e.age / e.life
            blend_ring(frame, game.px - cam_x, game.py - cam_y, 30 + 160 * f, 10, e.color, 0.85 * (1 - 0.5 * f))
        elif e.kind == "puff":
            f = e.age / e.life
            blend_disc(frame, e.x - cam_x, e.y - cam_y, 8 + 10 * f, (170, 170, 170), 0.7 * (1 - f))
    idx = np.flatnonzero(game.m_alive)
    xy = game.m_xy[idx]
    sx, sy = xy[:, 0] - cam_x, xy[:, 1] - cam_y
    visible = (sx > -30) & (sx < W + 30) & (sy > -30) & (sy < H + 30)
    for j in np.flatnonzero(visible)[np.argsort(sy[visible], kind="stable")]:
        i = idx[j]
        team = "blue" if game.m_team[i] == 1 else "red"
        sprites["minion_" + team].blit(frame, sx[j], sy[j])
        bx, by = int(round(sx[j])) - 10, int(round(sy[j])) - 17
        fill_rect(frame, bx - 1, by - 1, 22, 5, (15, 15, 15))
        fill_rect(frame, bx, by, int(round(20 * max(game.m_hp[i], 0) / 100)), 3, TEAM_COLORS[team])

    cx, cy = W // 2, H // 2  # the champion: always at the screen centre
    sprites["player"].blit(frame, cx, cy)
    fx, fy = MOVE_VECTORS[game.facing]
    for k in (1.0, 1.4, 1.8):  # tails trail behind the facing direction
        sprites["tail"].blit(frame, cx - fx * 11 * k, cy - fy * 11 * k + 2)
    sprites["face"].blit(frame, cx + fx * 7, cy + fy * 7)
    fill_rect(frame, cx - 31, cy - 41, 62, 8, (10, 10, 10))
    fill_rect(frame, cx - 30, cy - 40, int(round(60 * game.hp / 100)), 6, (70, 210, 80))

    for e in game.effects:  # projectiles and flashes above the units
        x, y = game.effect_position(e)
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
    draw_hud(game, frame)
    return frame


def draw_hud(game, frame: np.ndarray) -> None:
    """The minimap (units, view rectangle, player marker) and the abilities/health panel, drawn into `frame`."""
    mx, my, mw, mh = game.hud["minimap"]
    mm = minimap_base(mw, mh).copy()
    ix, iy, iw, ih = minimap_inner(mw, mh)
    idx = np.flatnonzero(game.m_alive)
    xy = game.m_xy[idx]
    ux = np.clip((ix + xy[:, 0] / WORLD_SIZE * iw).astype(np.int64), ix, ix + iw - 2)
    uy = np.clip((iy + xy[:, 1] / WORLD_SIZE * ih).astype(np.int64), iy, iy + ih - 2)
    team_rgb = np.where((game.m_team[idx] == 1)[:, None], (60, 110, 220), (200, 55, 45))
    for ddx in (0, 1):
        for ddy in (0, 1):
            mm[uy + ddy, ux + ddx] = team_rgb
    # Camera view rectangle (dim grey, 1 px) and the player's marker (white square, dark outline).
    vx0 = ix + (game.px - game.width / 2) / WORLD_SIZE * iw
    vy0 = iy + (game.py - game.height / 2) / WORLD_SIZE * ih
    vw, vh = game.width / WORLD_SIZE * iw, game.height / WORLD_SIZE * ih
    rect_outline(mm, vx0, vy0, vw, vh, (150, 150, 150), (ix, iy, iw, ih))
    mkx, mky = minimap_marker_position((game.px, game.py), game.width, game.height)
    draw_marker(mm, mkx - mx, mky - my, marker_size(game.width, game.height))
    frame[my : my + mh, mx : mx + mw] = mm

    ax, ay, aw, ah = game.hud["abilities_health"]
    layout = icon_layout(aw, ah)
    (hx, hy, hw, hh), (nx, ny, nw, nh) = bar_layout(aw, ah)
    # The panel only changes when a cooldown sweep row or a bar pixel changes: cache it by that state.
    sweep = tuple(
        int(round(size * game.cooldown[k] / game.cooldown_total[k])) if game.cooldown[k] > 0 else -1
        for k, (_, _, size) in enumerate(layout)
    )
    key = (aw, ah, sweep, int(round(hw * game.hp / 100)), int(round(nw * game.mana / 100)))
    panel = game.hud_panel_cache.get(key)
    if panel is None:
        panel = panel_base(aw, ah).copy()
        for k, (x0, y0, size) in enumerate(layout):
            if sweep[k] >= 0:
                grey = icon_art(size, k, greyed=True).copy()
                grey[: sweep[k]] = (grey[: sweep[k]] * 0.6).astype(np.uint8)  # the sweep shows time left
                panel[y0 : y0 + size, x0 : x0 + size] = grey
            else:
                panel[y0 : y0 + size, x0 : x0 + size] = icon_art(size, k, greyed=False)
        fill_rect(panel, hx, hy, key[3], hh, (60, 200, 70))
        fill_rect(panel, nx, ny, key[4], nh, (60, 110, 235))
        if len(game.hud_panel_cache) > 256:
            game.hud_panel_cache.clear()
        game.hud_panel_cache[key] = panel
    frame[ay : ay + ah, ax : ax + aw] = panel


_SPRITES: dict | None = None


def _sprites() -> dict[str, Sprite]:
    global _SPRITES
    if _SPRITES is None:
        s = {}
        for team, color in TEAM_COLORS.items():
            c = np.asarray(color, np.float32)
            s["minion_" + team] = (
                Sprite(12)
                .disc(2, 3, 10, (15, 25, 15), 0.45)
                .disc(0, 0, 10, c * 0.35)
                .disc(0, 0, 8.5, c)
                .disc(-3, -3, 3, np.minimum(c + 90, 255))
            )
        s["player"] = (
            Sprite(28)
            .ring(0, 3, 23, 3.5, (80, 230, 110), 0.9)
            .disc(3, 6, 18, (10, 20, 10), 0.5)
            .disc(0, 0, 16, (45, 15, 45))
            .disc(0, 0, 14, (205, 75, 165))
            .disc(-4, -5, 5, (245, 170, 225))
        )
        s["tail"] = Sprite(7).disc(0, 0, 6, (250, 245, 240)).disc(-1, -1, 3, (255, 255, 255))
        s["face"] = Sprite(7).disc(0, 0, 6.5, (250, 222, 205)).disc(0, 0, 2, (90, 30, 60))
        s["orb"] = Sprite(10).disc(0, 0, 9, (90, 170, 255)).disc(-2, -2, 4.5, (235, 245, 255))
        s["charm"] = (
            Sprite(9).disc(-3, -2, 5, (255, 105, 180)).disc(3, -2, 5, (255, 105, 180)).disc(0, 2, 5, (255, 105, 180))
        )
        s["foxfire"] = Sprite(8).disc(0, 0, 7, (190, 90, 255)).disc(0, 0, 3.5, (245, 220, 255))
        s["tower_shot"] = Sprite(7).disc(0, 0, 6, (255, 190, 80)).disc(0, 0, 3, (255, 250, 220))
        _SPRITES = s
    return _SPRITES
