"""BLIP-2's Q-Former as a connector (seed doc §4), on transformers' own `Blip2QFormerModel`: learned
queries (N(0, 0.02)) -> LayerNorm + dropout -> a BERT-style encoder whose layers self-attend over the
queries, cross-attend to the image features every `cross_attention_frequency`-th layer (0, 2, ...),
then run the query FFN -> `language_projection` Linear(hidden -> LLM width). The parameter names are
Blip2ForConditionalGeneration's (`query_tokens`, `qformer.*`, `language_projection.*`).

settings: `num_query_tokens` (32, BLIP-2; TinyLLaVA uses 128) and `config` (Blip2QFormerConfig fields on
top of BERT-base: hidden 768, 12 layers, 12 heads, FFN 3072, cross-attention every 2nd layer). The image
features are not position-encoded here, so the output does not depend on their order.
tokens_out = num_query_tokens, whatever the patch grid.
"""
from typing import Tuple

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from . import register

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 cross_attention_frequency=2, layer_norm_eps=1e-12, hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1, hidden_act='gelu', initializer_range=0.02)


@register('qformer')
class QFormerConnector(nn.Module):
    lora_targets = ['query', 'key', 'value', 'dense']

    def __init__(self, vision_width: int, llm_width: int, num_query_tokens: int = 32, config: dict = None):
        super().__init__()
        self.config = Blip2QFormerConfig(**{**BERT_BASE, **(config or {}), 'encoder_hidden_size': vision_width})
        self.query_tokens = nn.Parameter(torch.zeros(1, num_query_tokens, self.config.hidden_size))
        nn.init.normal_(self.query_tokens, std=self.config.initializer_range)
        self.qformer = Blip2QFormerModel(self.config)
        self.language_projection = nn.Linear(self.config.hidden_size, llm_width)

    @staticmethod
    def tiny_settings() -> dict:
        return {'num_query_tokens': 4, 'config': dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                      intermediate_size=64)}

    @staticmethod
    def tokens_out(settings: dict, patch_grid: Tuple[int, int], extra_tokens: int = 0) -> int:
        return int(settings.get('num_query_tokens', 32))

    def cross_attention_layers(self):
        return [i for i, layer in enumerate(self.qformer.encoder.layer) if layer.has_cross_attention]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, N, Dv] image features -> [B, Q, LLM width]."""
        queries = self.query_tokens.expand(features.shape[0], -1, -1)
        mask = torch.ones(features.shape[:2], dtype=torch.long, device=features.device)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=features, encoder_attention_mask=mask)
        return self.language_projection(out.last_hidden_state)
