"""Command lines that start from a named preset: `python -m ahriuwu_core.cli.train_tokenizer`,
`python -m ahriuwu_core.cli.train_dynamics`. They sit above `presets`, which imports the components they run, so
no component imports the preset registry."""
