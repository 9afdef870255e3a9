"""MoE-LLaVA's dense -> MoE transform (seed-systems §3): chosen decoder layers' FFNs become E experts,
each a copy of that FFN, plus a router. A spec turns it on with `llm.moe` settings; the composed
model then builds the LLM and upcycles it (vlm.py), and a dense checkpoint loads into it through
`expand_dense_state` (every expert gets the dense FFN's weights, routers a fresh init). Straight
after upcycling, with no assignment dropped, the model computes what the dense one did: the kept
weights sum to 1 over identical experts.
"""
import math
import re
from dataclasses import asdict, dataclass, field
from typing import List, Union

import torch
from torch import nn

from .block import UpcycledMoE, moe_blocks

MODES = ('sparse', 'dense', 'first_half', 'second_half')


@dataclass
class MoESettings:
    mode: Union[str, List[int]] = 'sparse'   # sparse: layers 0, 2, 4, ...; or an explicit list of layer indices
    num_experts: int = 4
    top_k: int = 2
    capacity_factor: float = 1.5             # training; inference is dropless
    min_capacity: int = 0
    drop_tokens: bool = True
    router_aux_loss_coef: float = 0.01       # loss = CE + coef * sum over MoE layers of l_aux
    router_z_loss_coef: float = 0.0
    layers: List[int] = field(default=None, repr=False)  # resolved from mode

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != 'layers'}


def moe_layer_indices(mode, num_layers: int) -> List[int]:
    if isinstance(mode, (list, tuple)):
        bad = [i for i in mode if not 0 <= int(i) < num_layers]
        if bad or not mode:
            raise ValueError(f'moe mode {list(mode)}: layer indices must be in 0..{num_layers - 1}')
        return sorted({int(i) for i in mode})
    if mode not in MODES:
        raise ValueError(f'moe mode {mode!r}: choose one of {list(MODES)} or a list of layer indices')
    return {'sparse': list(range(0, num_layers, 2)), 'dense': list(range(num_layers)),
            'first_half': list(range(num_layers // 2)),
            'second_half': list(range(num_layers // 2, num_layers))}[mode]


def decoder_layers(llm) -> nn.ModuleList:
    return llm.get_decoder().layers


def upcycle(llm, settings: MoESettings) -> MoESettings:
    """Replace the chosen layers' `mlp` with UpcycledMoE in place; -> settings with `layers` resolved."""
    layers = decoder_layers(llm)
    settings.layers = moe_layer_indices(settings.mode, len(layers))
    if settings.num_experts < settings.top_k:
        raise ValueError(f'moe: num_experts {settings.num_experts} < top_k {settings.top_k}')
    hidden = llm.config.hidden_size
    for index in settings.layers:
        if not hasattr(layers[index], 'mlp'):
            raise ValueError(f'moe: decoder layer {index} of {type(llm).__name__} has no `mlp` FFN')
        layers[index].mlp = UpcycledMoE(layers[index].mlp, hidden, settings.num_experts, settings.top_k,
                                        settings.capacity_factor, settings.min_capacity, settings.drop_tokens,
                                        settings.router_z_loss_coef)
    return settings


def expand_dense_state(state: dict, model_state: dict) -> dict:
    """A dense checkpoint's state (package names) for an upcycled model: each expert gets its layer's
    dense FFN weights; routers (absent from dense checkpoints) get nn.Linear's default init."""
    out = {k: v for k, v in state.items()}
    dense_keys = set()
    for key, like in model_state.items():
        if key in out:
            continue
        expert = re.match(r'(.*\.mlp)\.experts\.\d+\.(.*)$', key)
        if expert and f'{expert.group(1)}.{expert.group(2)}' in state:
            dense = f'{expert.group(1)}.{expert.group(2)}'
            out[key] = state[dense].clone()
            dense_keys.add(dense)
        elif key.endswith('.mlp.gate.weight'):
            weight = torch.empty(like.shape, dtype=torch.float32)
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # what a fresh nn.Linear draws
            out[key] = weight
    for key in dense_keys:
        del out[key]
    return out


def router_aux_loss(llm):
    """sum over MoE layers of the last forward's aux loss; None when no layer is upcycled."""
    losses = [block.aux_loss for _, block in moe_blocks(llm) if block.aux_loss is not None]
    return torch.stack(losses).sum() if losses else None


def added_parameters(ffn_parameters: int, hidden: int, num_experts: int) -> int:
    """Per MoE layer: E - 1 more FFN copies and the H x E router."""
    return (num_experts - 1) * ffn_parameters + hidden * num_experts
