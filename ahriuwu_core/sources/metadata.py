"""Facts parsed from a replay video's title and description: tier, role, champion matchup, patch, side."""

from __future__ import annotations

import re

_TIERS = [  # longest first so "grandmaster" is not read as "master"
    ("grandmaster", r"grand\s*master|\bgm\b"),
    ("challenger", r"challenger"),
    ("master", r"master"),
    ("diamond", r"diamond"),
    ("emerald", r"emerald"),
    ("platinum", r"platinum|plat"),
    ("gold", r"gold"),
    ("silver", r"silver"),
    ("bronze", r"bronze"),
    ("iron", r"iron"),
]
_ROLES = {
    "top": "top",
    "jungle": "jungle",
    "jgl": "jungle",
    "jg": "jungle",
    "mid": "mid",
    "middle": "mid",
    "adc": "bot",
    "bot": "bot",
    "bottom": "bot",
    "sup": "support",
    "supp": "support",
    "support": "support",
    "utility": "support",
}
_GAME_TAG = re.compile(r"\b([A-Z]{2,4}\d?)-(\d{6,})-(" + "|".join(_ROLES) + r")-(RED|BLUE)\b", re.I)
_PATCH = re.compile(
    r"\bpatch\s*v?(\d{1,2}\.(?:S\d\.)?\d{1,2})\b|\b((?:1[0-9]|2[0-9])\.(?:S\d\.)?\d{1,2})\b(?!\.\d)", re.I
)
_SIDE = re.compile(r"\b(blue|red)\s*side\b", re.I)


def parse_replay_metadata(title: str | None, description: str | None) -> dict:
    """Facts the replay channels put in titles/descriptions: elo tier, patch, side, role, region, game id.

    The domisumReplay-Garen channel ends descriptions with a game tag like `EUW-7646979958-TOP-RED`
    (region, game id, role, side); titles often name the tier ("Challenger", "plat") and a patch ("14.23").
    Missing facts are None."""
    title, description = title or "", description or ""
    text = f"{title}\n{description}"
    out = {"elo": None, "patch": None, "side": None, "role": None, "region": None, "game_id": None}
    tags = _GAME_TAG.findall(description) or _GAME_TAG.findall(title)
    if tags:
        region, game_id, role, side = tags[-1]  # the channel puts the tag last
        out.update(region=region.upper(), game_id=game_id, role=_ROLES[role.lower()], side=side.lower())
    for text_part in (title, description):  # the title wins; the description is the fallback
        out["elo"] = next((tier for tier, pattern in _TIERS if re.search(rf"\b(?:{pattern})\b", text_part, re.I)), None)
        if out["elo"]:
            break
    m = _PATCH.search(title) or _PATCH.search(description)
    if m:
        out["patch"] = m.group(1) or m.group(2)
    if out["side"] is None:
        m = _SIDE.search(text)
        if m:
            out["side"] = m.group(1).lower()
    return out
