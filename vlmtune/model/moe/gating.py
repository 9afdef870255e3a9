"""MoE-LLaVA's router decisions (DeepSpeed's TopKGate semantics, `deepspeed/moe/sharded_moe.py`),
written as per-token choices instead of [tokens, experts, capacity] one-hot tensors.

- gates = softmax(router logits), in fp32.
- top-1 = argmax; top-2 = argmax with the top-1 masked (DeepSpeed adds Gumbel noise there; off here).
- capacity per expert = max(ceil(S / E * capacity_factor * k), min_capacity); slots fill in token order,
  every top-1 choice before any top-2 choice; assignments past capacity are dropped (training only:
  `capacity=None` is dropless, as inference is).
- weights: the kept choices' gate probabilities renormalised to sum 1 (none kept: 0, the token's FFN
  output is zero and only the residual passes).
- l_aux = E^2 * mean_e(me_e * ce_e): me = mean gate probability, ce = fraction of tokens whose top-1 is e
  (before dropping). 1.0 for uniform gates or a balanced top-1; E for a collapsed router.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def expert_capacity(tokens: int, experts: int, capacity_factor: float, top_k: int, min_capacity: int = 0) -> int:
    return max(math.ceil(tokens / experts * capacity_factor * top_k), min_capacity)


@dataclass
class Routing:
    experts: torch.Tensor    # [S, k] chosen expert per slot (slot 0 = top-1)
    weights: torch.Tensor    # [S, k] combine weight, 0 where the assignment was dropped
    kept: torch.Tensor       # [S, k] bool
    l_aux: torch.Tensor      # scalar load-balancing loss
    capacity: int = None     # None: dropless


def route(logits: torch.Tensor, top_k: int, capacity_factor: float = None, min_capacity: int = 0) -> Routing:
    """logits: [S, E] router logits. capacity_factor None: dropless."""
    if top_k not in (1, 2):
        raise ValueError(f'top_k must be 1 or 2 (MoE-LLaVA / DeepSpeed gating), not {top_k}')
    tokens, num_experts = logits.shape
    gates = F.softmax(logits.float(), dim=-1)
    top1 = gates.argmax(dim=-1)
    chosen = [top1]
    if top_k == 2:
        chosen.append(logits.float().masked_fill(F.one_hot(top1, num_experts).bool(), float('-inf')).argmax(dim=-1))
    experts = torch.stack(chosen, dim=-1)
    kept = torch.ones_like(experts, dtype=torch.bool)
    capacity = None
    if capacity_factor is not None:
        capacity = expert_capacity(tokens, num_experts, capacity_factor, top_k, min_capacity)
        # Slot order = all top-1 choices (token order), then all top-2 choices: position in the expert's buffer.
        order = F.one_hot(experts.t().reshape(-1), num_experts)          # [k*S, E]
        position = (order.cumsum(dim=0) - 1).mul(order).sum(dim=-1)      # [k*S]
        kept = (position < capacity).reshape(top_k, tokens).t()
    probs = gates.gather(1, experts) * kept
    weights = probs / probs.sum(dim=-1, keepdim=True).clamp(min=torch.finfo(probs.dtype).eps)
    me = gates.mean(dim=0)
    ce = F.one_hot(top1, num_experts).float().mean(dim=0)
    l_aux = (me * ce).mean() * num_experts * num_experts
    return Routing(experts=experts, weights=weights, kept=kept, l_aux=l_aux, capacity=capacity)


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE's z-loss: mean over tokens of logsumexp(logits)^2 (keeps router logits small)."""
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()
