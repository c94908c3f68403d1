"""World model ("dynamics"): model, shortcut-forcing objective, sampler, latent data and trainer."""

from .model import DynamicsConfig, KVCache, WorldModel
from .objective import ObjectiveConfig, shortcut_forcing_loss
from .sampler import rollout

__all__ = ["DynamicsConfig", "KVCache", "WorldModel", "ObjectiveConfig", "shortcut_forcing_loss", "rollout"]
