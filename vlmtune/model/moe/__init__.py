"""MoE-tuning (MoE-LLaVA): upcycle dense FFNs into experts + routers, DeepSpeed-style gating,
export as native MoE LLMs, and the expert-load report."""
from .block import UpcycledMoE, moe_blocks
from .gating import Routing, expert_capacity, route, router_z_loss
from .upcycle import MoESettings, added_parameters, expand_dense_state, moe_layer_indices, router_aux_loss, upcycle

__all__ = ['UpcycledMoE', 'moe_blocks', 'Routing', 'expert_capacity', 'route', 'router_z_loss', 'MoESettings',
           'added_parameters', 'expand_dense_state', 'moe_layer_indices', 'router_aux_loss', 'upcycle']
