"""TinyLLaVA Factory's Perceiver resampler (Flamingo-style; seed doc §4) as a connector: Linear Dv -> H,
then `num_queries` learned latents (N(0, 1)) pass `num_layers` blocks of
[cross-attention: LayerNorm on the media and on the latents apart, queries from the latents, keys and
values from concat(media, latents), `heads` x `dim_head`, no biases, max-subtracted softmax, out
projection; residual] and [FFN: LayerNorm, H -> mult*H, GELU, mult*H -> H, no biases; residual], and
a final LayerNorm. Parameters: Dv*H + H + Q*H + 2H + L*(8H^2 + 2054H) at 8 heads x 64, mult 4.

settings: num_queries (128), num_layers (3), heads (8), dim_head (64), ff_mult (4).
tokens_out = num_queries, whatever the patch grid.
"""
from typing import Tuple

import torch
from torch import nn

from . import register


class PerceiverAttention(nn.Module):
    def __init__(self, width: int, heads: int, dim_head: int):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        inner = heads * dim_head
        self.norm_media, self.norm_latents = nn.LayerNorm(width), nn.LayerNorm(width)
        self.to_q = nn.Linear(width, inner, bias=False)
        self.to_kv = nn.Linear(width, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, width, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        media, latents = self.norm_media(media), self.norm_latents(latents)
        split = lambda t: t.reshape(*t.shape[:2], self.heads, -1).transpose(1, 2)  # noqa: E731
        q = split(self.to_q(latents)) * self.scale
        k, v = (split(t) for t in self.to_kv(torch.cat([media, latents], dim=1)).chunk(2, dim=-1))
        scores = q @ k.transpose(-1, -2)
        attention = (scores - scores.amax(dim=-1, keepdim=True).detach()).softmax(dim=-1)
        out = (attention @ v).transpose(1, 2).reshape(latents.shape[0], latents.shape[1], -1)
        return self.to_out(out)


def feed_forward(width: int, mult: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, mult * width, bias=False), nn.GELU(),
                         nn.Linear(mult * width, width, bias=False))


@register('resampler')
class ResamplerConnector(nn.Module):
    lora_targets = ['to_q', 'to_kv', 'to_out']

    def __init__(self, vision_width: int, llm_width: int, num_queries: int = 128, num_layers: int = 3,
                 heads: int = 8, dim_head: int = 64, ff_mult: int = 4):
        super().__init__()
        self.linear = nn.Linear(vision_width, llm_width)
        self.latents = nn.Parameter(torch.randn(num_queries, llm_width))
        self.layers = nn.ModuleList(nn.ModuleList([PerceiverAttention(llm_width, heads, dim_head),
                                                   feed_forward(llm_width, ff_mult)]) for _ in range(num_layers))
        self.norm = nn.LayerNorm(llm_width)

    @staticmethod
    def tiny_settings() -> dict:
        return {'num_queries': 4, 'num_layers': 1, 'heads': 2, 'dim_head': 16}

    @staticmethod
    def tokens_out(settings: dict, patch_grid: Tuple[int, int], extra_tokens: int = 0) -> int:
        return int(settings.get('num_queries', 128))

    @staticmethod
    def parameter_count(vision_width: int, llm_width: int, num_queries: int = 128, num_layers: int = 3) -> int:
        """The seed doc's formula (8 heads x 64, FFN x4)."""
        h = llm_width
        return vision_width * h + h + num_queries * h + 2 * h + num_layers * (8 * h * h + 2054 * h)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, N, Dv] -> [B, Q, H]."""
        media = self.linear(features)
        latents = self.latents.unsqueeze(0).expand(features.shape[0], -1, -1)
        for attention, ffn in self.layers:
            latents = attention(media, latents) + latents
            latents = ffn(latents) + latents
        return self.norm(latents)
