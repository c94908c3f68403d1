"""Command lines: `python -m ahriuwu_core.cli.train_tokenizer` and `python -m ahriuwu_core.cli.train_dynamics` start
from a named preset (they sit above `presets`, which imports the components they run, so no component imports the
preset registry); `python -m ahriuwu_core.cli.prune_models` removes older published models."""
