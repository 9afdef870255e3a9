"""The sparse FFN an upcycled layer runs: a router `gate` (Linear H -> E, no bias, computed in fp32 as
DeepSpeed's `wg`) and `experts`, E copies of the layer's dense FFN. The names are transformers'
Qwen3-MoE / Qwen2-MoE ones (`mlp.gate`, `mlp.experts.N.*`), so export to those is a rename-free copy.

Each forward keeps what the loss and the load report need: `aux_loss` (l_aux, plus the z-loss when
its weight is set) and `last_counts` (tokens each expert ran on). Training drops assignments past
the capacity; eval is dropless. Each expert runs once, on only the tokens routed to it.
"""
import copy

import torch
from torch import nn

from .gating import route, router_z_loss


class UpcycledMoE(nn.Module):
    def __init__(self, ffn: nn.Module, hidden_size: int, num_experts: int = 4, top_k: int = 2,
                 capacity_factor: float = 1.5, min_capacity: int = 0, drop_tokens: bool = True,
                 router_z_loss_coef: float = 0.0):
        super().__init__()
        self.num_experts, self.top_k = num_experts, top_k
        self.capacity_factor, self.min_capacity, self.drop_tokens = capacity_factor, min_capacity, drop_tokens
        self.router_z_loss_coef = router_z_loss_coef
        self.gate = nn.Linear(hidden_size, num_experts, bias=False)
        self.experts = nn.ModuleList(copy.deepcopy(ffn) for _ in range(num_experts))
        self.aux_loss = None
        self.last_counts = None
        self.expert_calls = 0  # tokens x experts actually computed, for checks that inference is sparse
        self.load = torch.zeros(num_experts, dtype=torch.long)  # summed counts while `counting` (report.py)
        self.counting = False

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        shape = hidden_states.shape
        tokens = hidden_states.reshape(-1, shape[-1])
        logits = nn.functional.linear(tokens.float(), self.gate.weight.float())
        dropping = self.training and self.drop_tokens
        routing = route(logits, self.top_k, self.capacity_factor if dropping else None, self.min_capacity)
        self.aux_loss = routing.l_aux
        if self.router_z_loss_coef:
            self.aux_loss = self.aux_loss + self.router_z_loss_coef * router_z_loss(logits)
        out = torch.zeros_like(tokens)
        counts = torch.zeros(self.num_experts, dtype=torch.long)
        assigned = routing.experts.masked_fill(~routing.kept, -1)
        for expert in assigned.unique().tolist():
            if expert < 0:
                continue
            token, slot = torch.where(assigned == expert)
            weight = routing.weights[token, slot, None].to(tokens.dtype)
            out.index_add_(0, token, self.experts[expert](tokens[token]) * weight)
            counts[expert] = token.numel()
        self.last_counts = counts
        self.expert_calls += int(counts.sum())
        if self.counting:
            self.load += counts
        return out.reshape(shape)


def moe_blocks(llm) -> list:
    """[(layer index, UpcycledMoE)] in layer order."""
    return [(int(name.split('.layers.')[1].split('.')[0]), module) for name, module in llm.named_modules()
            if isinstance(module, UpcycledMoE)]
