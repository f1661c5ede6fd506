"""CT-CLIP (Hamamci et al., arXiv 2403.17834): CTViT encoder, zero-shot and ClassFine models."""

from inference.models.ctclip.clip import (
    CTCLIPClassFine,
    CTCLIPImage,
    adapt_ctclip_state,
    build_ctclip,
    build_ctclip_classfine,
)
from inference.models.ctclip.ctvit import CTVIT_SOURCE, CTViT, CTViTConfig
from inference.models.ctclip.preprocess import CTClipPreprocessing, ctclip_input

__all__ = [
    "CTVIT_SOURCE", "CTCLIPClassFine", "CTCLIPImage", "CTClipPreprocessing", "CTViT",
    "CTViTConfig", "adapt_ctclip_state", "build_ctclip", "build_ctclip_classfine",
    "ctclip_input",
]
