"""Play a trained world model in the browser: `python -m ahriuwu_core.play` (see `server`)."""
