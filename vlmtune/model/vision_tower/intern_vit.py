"""InternViT (300M and 6B flavours) as a vision tower; the module is the exported one."""
import torch

from ...formats.internvl_remote.modeling_intern_vit import InternVisionModel
from . import register


@register('intern_vit_6b')
class InternViTTower(InternVisionModel):
    """Keys stay the official `vision_model.*` ones; adds the tower interface."""

    def patch_features(self, pixel_values: torch.Tensor, select_layer: int = -1) -> torch.Tensor:
        """[tiles, patches, C] from `select_layer` (-1: last layer; hidden_states[0] = embeddings), CLS dropped."""
        if select_layer == -1:
            out = self(pixel_values=pixel_values, output_hidden_states=False).last_hidden_state
        else:
            out = self(pixel_values=pixel_values, output_hidden_states=True).hidden_states[select_layer]
        return out[:, 1:, :]
