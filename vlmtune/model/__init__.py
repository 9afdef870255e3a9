"""The composed vision-language model (vlm.py), its spec (spec.py) and one registry per component
kind (vision_tower/, connector/, llm/). Checkpoint layouts live in vlmtune.formats."""
