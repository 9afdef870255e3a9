"""vlmtune: configuration-driven fine-tuning recipes for InternVL-style vision-language models."""
__version__ = '0.1.0'
