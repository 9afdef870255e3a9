"""vlmtune: configuration-driven fine-tuning recipes for vision-language models built as compositions."""
__version__ = '0.1.0'
