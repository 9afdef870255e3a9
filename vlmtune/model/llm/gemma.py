"""Gemma (TinyLLaVA Factory's Gemma-2B): transformers' own class. Its input embeddings are scaled by
sqrt(hidden) inside the model, image features spliced into them included (as TinyLLaVA trains it); the head
is tied to the embeddings. A released gemma-2b config.json says hidden_act 'gelu', which transformers 4.48
reads (exact GELU); the trained activation is the tanh approximation: give
spec=dict(llm=dict(config=dict(hidden_act='gelu_pytorch_tanh'))) to match it. Template: TinyLLaVA's `gemma`."""
from . import add
from .entry import LLMEntry


def tiny_config(common: dict, spec) -> dict:
    """The released 2B's structure: explicit head_dim, multi-query attention, tied head, tanh GELU."""
    return {**common, 'model_type': 'gemma', 'head_dim': spec.llm_width // spec.llm_heads, 'num_key_value_heads': 1,
            'hidden_act': 'gelu_pytorch_tanh', 'hidden_activation': 'gelu_pytorch_tanh', 'tie_word_embeddings': True}


# engines: none. vLLM (0.32) scales only the text embeddings (embed_input_ids) and passes a LLaVA's merged
# image features unscaled, so it would serve another model than the one trained (tests/test_serve_engines.py
# saw Gemma 2 answer otherwise); LMDeploy holds Gemma in no layout of ours.
GEMMA_ENGINES = ()
add(LLMEntry('gemma', 'GemmaForCausalLM', 'GemmaConfig', 'GemmaForCausalLM', default_template='gemma',
             tiny_config=tiny_config, tiny_tokenizer='llama', engines=GEMMA_ENGINES))
