"""An LLM family entry: everything the package knows about one family, in one place (timm's habit of
keeping `default_cfgs` beside the model). Layouts, the tiny factory, MoE export, serving and the tests
read these fields; none of them restates a family's facts.

| field | what it says | who reads it |
|---|---|---|
| family, architecture | registry name; transformers' `*ForCausalLM` name in config.json | layouts, `family_of` |
| config_class, model_class | the classes (a class, or a name in `transformers`) | building, remote-code folders |
| default_template | the chat template of this LLM when a folder names none | tiny factory, hub `-hf` folders |
| tiny_config | (common tiny fields, TinySpec) -> the tiny model's config dict | tiny factory, contract tests |
| tiny_tokenizer | how the tiny factory trains its tokenizer: 'bpe' / 'sentencepiece' / 'llama', or a function (specials, vocab size, folder, corpus) -> tokenizer | tiny factory |
| lora_targets, blocks_path | LoRA's Linear suffixes; the decoder blocks `partial:K` counts | trainability |
| logits | (causal LM, hidden states) -> logits, exactly as the class's forward | the labelled-positions loss |
| native_moe | the native MoE family an upcycled model of this family exports to | MoE export |
| engines | real engines that serve this LLM inside a family layout | serving |
| key_map | the family's released parameter names, where they differ from the package's | internvl layout, parts |
| hf_text_type | transformers' model_type that computes it where the family has no class (InternLM2: llama) | internvl_hf |
| shipped_files | model/llm files a remote-code folder ships (LLMs newer than the pinned transformers) | composite layout |
| packed_router_loss | a native MoE whose router loss leaves packed (4-D mask) rows out correctly | the model's loss |
| packing | packed rows (4-D block mask, restarting position ids) are computed per sample | the data path |
| embed_key, head_key | LLM-relative names of the input embedding and the head (one tensor when tied) | layouts |
| head_bias | the head has a bias (Phi-2): layouts whose owner's newer class has an unbiased head say so (owner_caveat) | layouts |
| oracle_env | a side environment whose transformers computes the family right, where the pinned one does not | tests |
| make_config, released_model_type | for a family whose config dict is not its config class's fields | building |
"""
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple, Union

import transformers

from ..packed_attention import NAME as SDPA_PACKED
from ..packed_attention import enable_packed_attention

ATTENTION = ('self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj')
ATTENTION_MLP = ATTENTION + ('mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj')
ENGINES = ('vllm', 'lmdeploy-pytorch', 'turbomind')


def lm_head_logits(model, hidden):
    """Logits as most causal LMs make them: the output embedding (lm_head) on the last hidden states."""
    return model.get_output_embeddings()(hidden)


def _resolve(obj):
    """A class given directly, or a name: 'LlamaConfig' (in transformers) or 'module.path.Name'."""
    if not isinstance(obj, str):
        return obj
    if '.' in obj:
        module, _, name = obj.rpartition('.')
        return getattr(importlib.import_module(module), name)
    return getattr(transformers, obj)


@dataclass(frozen=True)
class KeyMap:
    """A family's released parameter names <-> the package's, on LLM-relative keys (`model.layers.0...`)."""
    to_release: Callable[[dict], dict]
    from_release: Callable[[dict], dict]


@dataclass(frozen=True)
class LLMEntry:
    family: str
    architecture: str
    config_class: Any
    model_class: Any
    default_template: str
    tiny_config: Callable[[dict, Any], dict]
    lora_targets: Tuple[str, ...] = ATTENTION_MLP
    blocks_path: str = 'model.layers'
    logits: Callable = lm_head_logits
    native_moe: Optional[str] = None
    engines: Tuple[str, ...] = ENGINES
    key_map: Optional[KeyMap] = None
    hf_text_type: Optional[str] = None
    shipped_files: Tuple[str, ...] = ()
    tiny_tokenizer: Union[str, Callable] = 'bpe'
    packed_router_loss: bool = False
    packing: bool = True
    embed_key: str = 'model.embed_tokens.weight'
    head_key: str = 'lm_head.weight'
    head_bias: bool = False
    oracle_env: Optional[str] = None
    make_config: Optional[Callable[[dict], Any]] = None  # when the config dict is not config_class's own fields
    released_model_type: Optional[str] = None           # config.json's model_type when config_class has another

    def config(self, settings: dict):
        """The transformers config object of a spec's `llm` settings ({'config': dict, ...})."""
        if self.make_config is not None:
            return self.make_config(settings['config'])
        return _resolve(self.config_class)(**settings['config'])

    @property
    def model_type(self) -> str:
        return self.released_model_type or _resolve(self.config_class).model_type

    def build(self, settings: dict, attn_implementation: str = 'sdpa'):
        config = self.config(settings)
        # sdpa_packed is SDPA switched per sample after the build; a class that picks its attention classes
        # when built (StableLM, OPT, 4.48's Qwen2-MoE) knows no such name and keeps SDPA with the dense mask.
        config._attn_implementation = 'sdpa' if attn_implementation == SDPA_PACKED else attn_implementation
        model = _resolve(self.model_class)(config)
        if attn_implementation == SDPA_PACKED:
            enable_packed_attention(model)
        return model

    def blocks(self, model) -> list:
        """The decoder blocks (`partial:K` trains blocks K..) of a built causal LM."""
        module = model
        for name in self.blocks_path.split('.'):
            module = getattr(module, name)
        return list(module)

    def untie(self, state: dict, prefix: str = '') -> dict:
        """A tied LLM's state as transformers saves it (the head left out: it is the embedding)."""
        return {k: v for k, v in state.items() if k != prefix + self.head_key}

    def retie(self, state: dict, prefix: str = '') -> dict:
        """The inverse: the head restored from the embedding where a folder left it out."""
        head, embed = prefix + self.head_key, prefix + self.embed_key
        return state if head in state or embed not in state else {**state, head: state[embed]}

    @property
    def forward_arguments(self) -> frozenset:
        """What the causal LM's forward takes by name (a layout's owner may pass e.g. cache_position)."""
        import inspect
        return frozenset(inspect.signature(_resolve(self.model_class).forward).parameters)

    @property
    def in_transformers(self) -> bool:
        """Does the installed transformers build this family from its config (AutoModelForCausalLM)?"""
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(self.model_type) == self.architecture
