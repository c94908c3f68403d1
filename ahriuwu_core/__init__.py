"""The world model pipeline's library: `data` (data on disk), `tokenizer` and `dynamics` (the models), `training`
(what their trainers share), `images` (metrics, pictures, motion), `layers`, `eval`, `play`, `sources`, `demo`,
`presets` (the named configurations) and `cli` (the command lines that start from a preset)."""
