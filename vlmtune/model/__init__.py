"""Vision-language model components, the composed model and official-format I/O."""
