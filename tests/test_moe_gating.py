"""Our MoE-LLaVA gating against DeepSpeed's own `top1gating` / `top2gating` (deepspeed.moe.sharded_moe,
noise off) on the same logits: capacity, which assignments are kept, combine weights and l_aux."""
import pytest
import torch
from deepspeed.moe.sharded_moe import top1gating, top2gating

from vlmtune.model.moe import expert_capacity, route


def dense_weights(routing, num_experts):
    """[S, E] combine weights from our per-token choices."""
    out = torch.zeros(routing.experts.shape[0], num_experts)
    return out.scatter_add(1, routing.experts, routing.weights * routing.kept)


def test_capacity_matches_the_issue_and_deepspeed():
    assert expert_capacity(100, 4, 1.5, 2) == 75
    logits = torch.randn(100, 4)
    _, combine, _, _ = top2gating(logits.clone(), 1.5, 0, top2_2nd_expert_sampling=False)
    assert combine.shape[-1] == 75 == route(logits, 2, 1.5).capacity
    _, combine1, _, _ = top1gating(logits.clone(), 1.5, 0, use_rts=False)
    assert combine1.shape[-1] == expert_capacity(100, 4, 1.5, 1) == route(logits, 1, 1.5).capacity == 38


@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('capacity_factor', [0.5, 1.0, 1.5, 4.0])
def test_top2_equals_deepspeed(seed, capacity_factor):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(64, 4, generator=generator) * 2
    logits[:20, 0] += 3  # a popular expert, so small capacities drop assignments
    l_aux, combine, dispatch, _ = top2gating(logits.clone(), capacity_factor, 0, top2_2nd_expert_sampling=False)
    ours = route(logits, 2, capacity_factor)
    torch.testing.assert_close(dense_weights(ours, 4), combine.sum(-1), atol=1e-6, rtol=0)
    assert int(ours.kept.sum()) == int(dispatch.sum())
    torch.testing.assert_close(ours.l_aux, l_aux, atol=1e-6, rtol=0)
    if capacity_factor == 0.5:
        assert not ours.kept.all()  # the case drops assignments


@pytest.mark.parametrize('seed', range(5))
def test_top1_equals_deepspeed_when_nothing_is_dropped(seed):
    """DeepSpeed's top-1 picks which tokens overflow by torch.topk over ties, not token order, so kept
    sets are compared without dropping; its combine weight is the gate probability, ours renormalised
    (1, as native MoE LLMs with norm_topk_prob compute it)."""
    logits = torch.randn(50, 4, generator=torch.Generator().manual_seed(seed))
    l_aux, combine, _, _ = top1gating(logits.clone(), 4.0, 0, use_rts=False)
    ours = route(logits, 1, 4.0)
    ds = combine.sum(-1)
    assert ours.kept.all() and torch.equal(ds.argmax(-1), ours.experts[:, 0])
    torch.testing.assert_close(dense_weights(ours, 4), (ds > 0).float(), atol=0, rtol=0)
    torch.testing.assert_close(ours.l_aux, l_aux, atol=1e-6, rtol=0)


def test_l_aux_is_one_for_a_zero_router_and_e_for_a_collapsed_one():
    zero = torch.zeros(32, 4)
    collapsed = torch.zeros(32, 4)
    collapsed[:, 2] = 50.0
    for k, gating in ((1, lambda x: top1gating(x, 1.0, 0, use_rts=False)),
                      (2, lambda x: top2gating(x, 1.0, 0, top2_2nd_expert_sampling=False))):
        assert route(zero, k).l_aux.item() == pytest.approx(1.0) == gating(zero.clone())[0].item()
        assert route(collapsed, k).l_aux.item() == pytest.approx(4.0) == gating(collapsed.clone())[0].item()


def test_dropped_tokens_get_zero_weight_and_dropless_keeps_all():
    logits = torch.zeros(16, 4)
    logits[:, 1] = 5.0  # everyone's top-1 is expert 1
    ours = route(logits, 1, 1.0)  # capacity 4
    assert ours.capacity == 4 and int(ours.kept.sum()) == 4 and ours.kept[:4, 0].all()
    assert (dense_weights(ours, 4)[4:] == 0).all()
    assert route(logits, 1).kept.all()
