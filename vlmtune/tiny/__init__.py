"""Tiny random models for tests, benchmarks and the embedded default (no downloads): InternVL-style models of
any registered LLM family (internvl.py), LLaVA-style parts and folders (llava.py), compositions of any
registered parts (compose.py), and the tokenizers they use (tokenizers.py)."""
from .compose import compose_tiny
from .internvl import (TinySpec, build_tiny_model, build_tokenizer, llm_config_dict, make_tiny_folder, make_tiny_parts,
                       model_spec, vision_config_dict)
from .llava import (LLAVA_TOWERS, TinyLlavaSpec, make_tiny_llama_folder, make_tiny_llava_folder, make_tiny_llava_parts,
                    make_tiny_tower_folder)
from .tokenizers import (CHATML_SPECIALS, CORPUS, LLAVA_CORPUS, train_bpe_tokenizer, train_llama_tokenizer,
                         train_sentencepiece_tokenizer)

__all__ = ['compose_tiny', 'CHATML_SPECIALS', 'CORPUS', 'LLAVA_CORPUS', 'LLAVA_TOWERS', 'TinyLlavaSpec', 'TinySpec', 'build_tiny_model',
           'build_tokenizer', 'llm_config_dict', 'make_tiny_folder', 'make_tiny_llama_folder', 'make_tiny_llava_folder',
           'make_tiny_llava_parts', 'make_tiny_parts', 'make_tiny_tower_folder', 'model_spec', 'train_bpe_tokenizer',
           'train_llama_tokenizer', 'train_sentencepiece_tokenizer', 'vision_config_dict']
