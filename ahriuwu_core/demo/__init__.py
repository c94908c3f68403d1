"""The built-in demo game, so the whole pipeline runs without downloading anything. It is a source like any
other: the library reaches it only through `sources` (the demo source) and `presets` (its settings).

Modules: `game` (state and simulation), `render` (drawing a frame), `hud` (HUD layout, minimap, marker),
`map` (the world map and drawing helpers), `policy` (the scripted player), `video` (mp4 + actions sidecar
writing), `motion` (the scroll estimate the evaluation is given for demo videos). `python -m ahriuwu_core.demo`
writes the videos.
"""
