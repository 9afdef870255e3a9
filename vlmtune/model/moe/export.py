"""An upcycled LLM as the native MoE architecture its dense family maps to exactly (stack.md, "MoE
mapping"), with dropless inference equal to ours:

| dense | native MoE | how |
|---|---|---|
| qwen3 | qwen3_moe | same attention; MoE layers as they are, the others in `mlp_only_layers`; norm_topk_prob |
| qwen2 | qwen2_moe | the same, plus the always-on shared expert with its `down_proj` zeroed (it adds 0) |
| llama | mixtral | Mixtral has no dense layers: those become E identical experts (any routing gives the FFN) |

Which dense family exports to which is each dense entry's `native_moe`; anything else raises, naming what is supported. -> (llm spec dict, LLM state under package names).
"""
import torch

from ..llm import REGISTRY as LLMS
from ..llm import entries
from ..spec import ModelSpec
from .upcycle import MoESettings, moe_layer_indices

FFN = ('gate_proj', 'up_proj', 'down_proj')
MIXTRAL_FFN = {'gate_proj': 'w1', 'down_proj': 'w2', 'up_proj': 'w3'}


def native_targets() -> dict:
    """dense family -> its native MoE family, as the dense entries say (`native_moe`)."""
    return {entry.family: entry.native_moe for entry in entries() if entry.native_moe}


def native_family(llm_spec: dict) -> str:
    family, targets = llm_spec['type'], native_targets()
    if family not in targets:
        raise ValueError(f'an upcycled {family} LLM has no native MoE architecture to export to; supported: '
                         + ', '.join(f'{d} -> {m}' for d, m in targets.items()) + ' (or save the vlmtune layout)')
    if targets[family] == 'mixtral' and (llm_spec['config'].get('mlp_bias') or llm_spec['config'].get('attention_bias')):
        raise ValueError(f'{family} -> mixtral needs an LLM without attention/MLP biases (Mixtral has none)')
    return targets[family]


def native_config(llm_spec: dict) -> dict:
    settings = MoESettings(**llm_spec['moe'])
    config = dict(llm_spec['config'])
    layers = moe_layer_indices(settings.mode, config['num_hidden_layers'])
    dense = [i for i in range(config['num_hidden_layers']) if i not in layers]
    family = native_family(llm_spec)
    common = dict(num_experts_per_tok=settings.top_k, router_aux_loss_coef=settings.router_aux_loss_coef,
                  output_router_logits=False, architectures=[LLMS.get(family).architecture], model_type=family)
    if family == 'mixtral':
        config.update(common, num_local_experts=settings.num_experts, router_jitter_noise=0.0,
                      sliding_window=None)
        for key in ('mlp_bias', 'attention_bias', 'pretraining_tp'):
            config.pop(key, None)
        return config
    config.update(common, num_experts=settings.num_experts, moe_intermediate_size=config['intermediate_size'],
                  norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=dense)
    if family == 'qwen2_moe':
        config.update(shared_expert_intermediate_size=1)  # the smallest shared expert; it is zeroed anyway
    return config


def native_state(llm_spec: dict, state: dict) -> dict:
    """The LLM's upcycled state (keys without the `llm.` prefix) under the native names."""
    settings = MoESettings(**llm_spec['moe'])
    family = native_family(llm_spec)
    config = llm_spec['config']
    layers = moe_layer_indices(settings.mode, config['num_hidden_layers'])
    out = dict(state)
    hidden = config['hidden_size']
    for index in range(config['num_hidden_layers']):
        prefix = f'model.layers.{index}.mlp.'
        if family == 'mixtral':
            _to_mixtral(out, index, index in layers, settings.num_experts, hidden)
        elif family == 'qwen2_moe' and index in layers:
            like = out[prefix + 'experts.0.gate_proj.weight']
            out[prefix + 'shared_expert.gate_proj.weight'] = torch.zeros(1, hidden, dtype=like.dtype)
            out[prefix + 'shared_expert.up_proj.weight'] = torch.zeros(1, hidden, dtype=like.dtype)
            out[prefix + 'shared_expert.down_proj.weight'] = torch.zeros(hidden, 1, dtype=like.dtype)
            out[prefix + 'shared_expert_gate.weight'] = torch.zeros(1, hidden, dtype=like.dtype)
    return out


def _to_mixtral(state: dict, index: int, is_moe: bool, num_experts: int, hidden: int) -> None:
    old, new = f'model.layers.{index}.mlp.', f'model.layers.{index}.block_sparse_moe.'
    if is_moe:
        state[new + 'gate.weight'] = state.pop(old + 'gate.weight')
        for expert in range(num_experts):
            for proj, w in MIXTRAL_FFN.items():
                state[f'{new}experts.{expert}.{w}.weight'] = state.pop(f'{old}experts.{expert}.{proj}.weight')
        return
    ffn = {proj: state.pop(f'{old}{proj}.weight') for proj in FFN}
    state[new + 'gate.weight'] = torch.zeros(num_experts, hidden, dtype=ffn['gate_proj'].dtype)
    for expert in range(num_experts):
        for proj, w in MIXTRAL_FFN.items():
            state[f'{new}experts.{expert}.{w}.weight'] = ffn[proj].clone()


def export_native_moe(spec, state: dict):
    """An upcycled composition (ModelSpec, composed state) -> the same with the native MoE LLM."""
    prefix = 'llm.'
    llm_state = native_state(spec.llm, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    out = {k: v for k, v in state.items() if not k.startswith(prefix)}
    out.update({prefix + k: v for k, v in llm_state.items()})
    llm = {'type': native_family(spec.llm), 'config': native_config(spec.llm)}
    return ModelSpec.from_dict({**spec.to_dict(), 'llm': llm}), out
