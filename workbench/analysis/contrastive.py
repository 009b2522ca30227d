"""Contrastive generation (CGE) moved to `workbench.decoding.contrastive` (a decoding
strategy now); imported here for compatibility."""
from ..decoding.contrastive import ContrastiveResult, contrastive_generate

__all__ = ["ContrastiveResult", "contrastive_generate"]
