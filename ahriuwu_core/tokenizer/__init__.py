"""Frame tokenizers (CNN and the paper's block-causal transformer), their training, encoding and checks.

Both kinds expose: encode(frames (B,T,3,H,W) in [0,1]) -> (B,T,N,D) in [-1,1]; decode(latents) -> frames
in [0,1]; num_tokens; token_dim; forward(frames, mask_ratio_max) -> (unclamped recon, latents).

Modules: `cnn`, `transformer` and `layers` (the two kinds), `build` (kinds, building, loading, code version), `data`
(training frames), `losses`, `train` (the training loop), `quality` (held-out metrics, collapse check), `encode`
(frames store -> latents store)."""

from .build import build_tokenizer, code_version, count_params, load_tokenizer
from .cnn import CNNTokenizer, CNNTokenizerConfig
from .data import FrameWindowSampler
from .encode import encode_video
from .quality import attention_entropy, collapse_check, heldout_metrics, recon_strip, reconstruct
from .train import TokenizerTrainConfig, train_tokenizer
from .transformer import TransformerTokenizer, TransformerTokenizerConfig

__all__ = [
    "CNNTokenizer",
    "CNNTokenizerConfig",
    "TransformerTokenizer",
    "TransformerTokenizerConfig",
    "TokenizerTrainConfig",
    "FrameWindowSampler",
    "build_tokenizer",
    "load_tokenizer",
    "train_tokenizer",
    "count_params",
    "code_version",
    "encode_video",
    "collapse_check",
    "attention_entropy",
    "recon_strip",
    "heldout_metrics",
    "reconstruct",
]
