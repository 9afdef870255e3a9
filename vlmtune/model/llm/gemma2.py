"""Gemma 2: transformers' own class, with its facts kept here. Its logits are soft-capped
(cap * tanh(lm_head(h) / cap), final_logit_softcapping), so the training loss takes them through `logits`
below; its attention scores are soft-capped too, which PyTorch SDPA would skip, so it attends eagerly (what
transformers advises for training it; flash-attention applies the cap and is kept). Every other layer attends
in a sliding window; the embeddings are scaled by sqrt(hidden) and the head is tied, as Gemma's. Its
HybridCache indexes past sliding_window: keep prompts and answers shorter than it (the releases' 4096)."""
import torch

from . import add
from .entry import LLMEntry
from .gemma import GEMMA_ENGINES


def softcapped_logits(model, hidden):
    logits = model.get_output_embeddings()(hidden)
    cap = model.config.final_logit_softcapping
    return logits if cap is None else torch.tanh(logits / cap) * cap


class Gemma2Entry(LLMEntry):
    def build(self, settings: dict, attn_implementation: str = 'sdpa'):
        eager = attn_implementation in ('sdpa', 'sdpa_packed')  # SDPA drops attn_logit_softcapping
        return super().build(settings, 'eager' if eager else attn_implementation)


def tiny_config(common: dict, spec) -> dict:
    """The released 2B's structure: GQA, head_dim = query_pre_attn_scalar, both soft-caps, the window, tied head."""
    head_dim = spec.llm_width // spec.llm_heads
    return {**common, 'model_type': 'gemma2', 'head_dim': head_dim, 'query_pre_attn_scalar': head_dim,
            'hidden_act': 'gelu_pytorch_tanh', 'hidden_activation': 'gelu_pytorch_tanh', 'sliding_window': 4096,
            'final_logit_softcapping': 30.0, 'attn_logit_softcapping': 50.0, 'tie_word_embeddings': True}


add(Gemma2Entry('gemma2', 'Gemma2ForCausalLM', 'Gemma2Config', 'Gemma2ForCausalLM', default_template='gemma',
                tiny_config=tiny_config, logits=softcapped_logits, tiny_tokenizer='llama',
                engines=GEMMA_ENGINES))
