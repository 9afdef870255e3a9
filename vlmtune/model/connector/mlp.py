"""LLaVA's projectors (seed doc §1; TinyLLaVA has the same three): one token out per token in.

* `linear`: one Linear Dv -> H. The module is the Linear, so its keys are `weight` / `bias`, as
  LLaVA's `mm_projector.weight`. LoRA cannot wrap it (PEFT targets submodules): train it fully.
* `mlp{N}x_gelu` (N = 1..8): Linear Dv -> H, then N-1 x [GELU, Linear H -> H], keys `0.*`, `2.*`,
  ... as LLaVA's `mm_projector.{0,2}`; llava-hf's `multi_modal_projector.linear_1/linear_2` are
  `0` and `2` of mlp2x_gelu. GELU is the exact (erf) one, as LLaVA's nn.GELU() and llava-hf's "gelu".
* `identity`: the tower's features as they are; needs Dv = H.

No settings. tokens_out = the tower's tokens (patch grid + its extra tokens); grid_out = the patch
grid, which LLaVA-NeXT's spatial merge rearranges.
"""
from typing import Tuple

import torch
from torch import nn

from . import register


class _TokenwiseConnector:
    """Token counts shared by the connectors here: each maps tokens one to one."""
    lora_targets = []

    @staticmethod
    def tiny_settings() -> dict:
        return {}  # no settings

    @classmethod
    def tokens_out(cls, settings: dict, patch_grid: Tuple[int, int], extra_tokens: int = 0) -> int:
        return patch_grid[0] * patch_grid[1] + extra_tokens

    @classmethod
    def grid_out(cls, settings: dict, patch_grid: Tuple[int, int]) -> Tuple[int, int]:
        return tuple(patch_grid)


@register('linear')
class LinearConnector(_TokenwiseConnector, nn.Linear):
    def __init__(self, vision_width: int, llm_width: int):
        nn.Linear.__init__(self, vision_width, llm_width)


class MLPConnector(_TokenwiseConnector, nn.Sequential):
    depth = 2  # Linear layers; each registered mlp{N}x_gelu fixes its own

    def __init__(self, vision_width: int, llm_width: int):
        layers = [nn.Linear(vision_width, llm_width)]
        for _ in range(self.depth - 1):
            layers += [nn.GELU(), nn.Linear(llm_width, llm_width)]
        nn.Sequential.__init__(self, *layers)


for _depth in range(1, 9):
    _cls = type(f'MLP{_depth}xGELU', (MLPConnector,),
                {'depth': _depth, 'lora_targets': [str(2 * i) for i in range(_depth)], '__module__': __name__})
    globals()[_cls.__name__] = register(f'mlp{_depth}x_gelu')(_cls)  # importable by name (pickling)


@register('identity')
class IdentityConnector(_TokenwiseConnector, nn.Module):
    SAME_WIDTH = True  # the tower's width is the LLM's (a tiny composition is built so)

    def __init__(self, vision_width: int, llm_width: int):
        if vision_width != llm_width:
            raise ValueError(f'identity connector: the vision tower is {vision_width} wide but the LLM '
                             f'{llm_width}; they must match (or use linear / mlp2x_gelu)')
        nn.Module.__init__(self)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features
