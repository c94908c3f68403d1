"""World model ("dynamics"): model, shortcut-forcing objective, sampler, latent data and trainer.

Modules: `config` (DynamicsConfig), `blocks` (RoPE, attention, SwiGLU, the KV cache, the transformer block),
`model` (WorldModel), `prior` (the action-kernel prior), `objective` (shortcut forcing), `sampler` (rollouts),
`data` (latent windows), `train_config` (DynamicsTrainConfig), `train` (the training loop), `distributed`
(data-parallel ranks), `launch` (N ranks on this machine), `load` (a saved world model), `checks`.
"""

from .blocks import KVCache
from .config import DynamicsConfig
from .model import WorldModel
from .objective import ObjectiveConfig, shortcut_forcing_loss
from .sampler import rollout

__all__ = ["DynamicsConfig", "KVCache", "WorldModel", "ObjectiveConfig", "shortcut_forcing_loss", "rollout"]
