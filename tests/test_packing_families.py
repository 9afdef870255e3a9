"""Packing for every LLM family the registry has (a family is covered the day it registers):
`sdpa_packed` really runs attention per sample and gives the dense block mask's logits, and under
flash_attention_2 the LLM gets transformers' padding-free inputs (position_ids, no 4-D mask)."""
import copy
import sys
from itertools import accumulate

import pytest
import torch
import torch.nn.functional as F
import transformers.modeling_flash_attention_utils as fa_utils
from transformers.modeling_outputs import CausalLMOutputWithPast

from vlmtune.data.collate import pack_collate, pad_collate
from vlmtune.model.llm import REGISTRY
from vlmtune.model.packed_attention import NAME, enable_packed_attention
from vlmtune.model.vlm import llm_attention_inputs
from vlmtune.tiny import TinySpec, build_tiny_model

FAMILIES = [name for name in REGISTRY.names() if REGISTRY.get(name).packing]  # what the entries say packs
LENGTHS = [9, 14, 6]  # three samples in one row, the first with an image...
PAD = 3               # ...then three padding tokens (one-token blocks at position 0)
RESTARTING_POSITIONS = torch.cat([torch.arange(n) for n in LENGTHS] + [torch.zeros(PAD, dtype=torch.long)])[None]


@pytest.fixture(scope='module')
def tiny_models():
    """tiny_models(family) -> (model, tokenizer), built once per family, LLM reset to plain SDPA."""
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = build_tiny_model(TinySpec(llm=family))
        model, tokenizer = cache[family]
        model.llm.config._attn_implementation = 'sdpa'
        return model, tokenizer
    return get


def make_samples(model):
    """Samples as the dataset gives them: the first has one image tile, the others are text only."""
    gen = torch.Generator().manual_seed(0)
    context, per_tile = model.img_context_token_id, model.num_image_token
    samples = []
    for i, n in enumerate(LENGTHS):
        ids = torch.randint(3, 300, (n,), generator=gen)
        ids[ids == context] = 3
        if i == 0:
            ids[2:2 + per_tile] = context
        tile = torch.randn(1, 3, 56, 56, generator=gen) if i == 0 else torch.zeros(1, 3, 56, 56)
        samples.append({'input_ids': ids, 'labels': ids.clone(), 'pixel_values': tile,
                        'image_flags': torch.tensor([1 if i == 0 else 0])})
    return samples


def packed_row(model, tokenizer):
    row = pack_collate(make_samples(model), tokenizer.pad_token_id, pad_to=sum(LENGTHS) + PAD)
    assert torch.equal(row['position_ids'], RESTARTING_POSITIONS) and row['attention_mask'].dim() == 4
    row.pop('sample_lengths')
    return row


def test_registry_has_the_known_families():
    assert {'qwen2', 'llama', 'phi3', 'internlm2'} <= set(FAMILIES), FAMILIES


# --- sdpa_packed: per-sample attention, same logits as the dense block mask -----------------------
def logits_and_sdpa_lengths(llm, row, monkeypatch):
    """The LLM's logits for the packed row, and the query length of every SDPA call it made."""
    lengths, sdpa = [], F.scaled_dot_product_attention

    def counting(query, *args, **kwargs):
        lengths.append(query.shape[-2])
        return sdpa(query, *args, **kwargs)
    with monkeypatch.context() as patch, torch.no_grad():
        patch.setattr(F, 'scaled_dot_product_attention', counting)  # transformers and sdpa_packed both call F's
        logits = llm(input_ids=row['input_ids'], attention_mask=row['attention_mask'],
                     position_ids=row['position_ids']).logits
    return logits, lengths


def each_sample_alone(llm, row) -> torch.Tensor:
    """The LLM's logits on each packed sample run on its own, laid out as the row (padding left out)."""
    cuts = list(accumulate([0, *LENGTHS]))
    with torch.no_grad():
        return torch.cat([llm(input_ids=row['input_ids'][:, a:b]).logits for a, b in zip(cuts[:-1], cuts[1:])], dim=1)


@pytest.mark.parametrize('family', FAMILIES)
def test_sdpa_packed_runs_each_sample_alone_with_dense_mask_logits(family, tiny_models, monkeypatch):
    """The dense block mask gives each sample's own logits. An LLM whose attention reads transformers'
    ALL_ATTENTION_FUNCTIONS then runs `sdpa_packed`: one SDPA call per sample, the same logits; one that picks
    its attention classes when built (transformers 4.48's Qwen2-MoE, StableLM) keeps the dense mask."""
    model, tokenizer = tiny_models(family)
    llm, row = model.llm, packed_row(model, tokenizer)
    layers = len(REGISTRY.get(family).blocks(llm))
    dense_logits, dense_calls = logits_and_sdpa_lengths(llm, row, monkeypatch)
    assert dense_calls == [sum(LENGTHS) + PAD] * layers  # one call over the whole row per layer
    torch.testing.assert_close(dense_logits[:, :sum(LENGTHS)], each_sample_alone(llm, row), atol=1e-5, rtol=0)
    if not enable_packed_attention(llm):
        assert llm.config._attn_implementation == 'sdpa'
        return
    assert llm.config._attn_implementation == NAME
    packed_logits, packed_calls = logits_and_sdpa_lengths(llm, row, monkeypatch)
    assert packed_calls == LENGTHS * layers  # one call per sample per layer; padding tokens need none
    torch.testing.assert_close(packed_logits, dense_logits, atol=1e-5, rtol=0)
    twin = copy.deepcopy(llm)  # e.g. a preference-training reference model: its masks decided by itself
    assert all(m._update_causal_mask.__self__ is m for m in twin.modules() if hasattr(m, '_mask_decided_as_sdpa'))
    torch.testing.assert_close(logits_and_sdpa_lengths(twin, row, monkeypatch)[0], packed_logits, atol=0, rtol=0)


# --- flash_attention_2: position_ids and no mask reach the LLM ----------------------------------
def capture_llm_kwargs(model, monkeypatch):
    """Replace the LLM's forward by one that records its kwargs and returns zero logits."""
    seen, vocab = {}, model.llm.config.vocab_size

    def forward(**kwargs):
        seen.update(kwargs)
        embeds = kwargs['inputs_embeds']
        return CausalLMOutputWithPast(logits=embeds.new_zeros(*embeds.shape[:2], vocab))
    monkeypatch.setattr(model.llm, 'forward', forward)
    return seen


@pytest.mark.parametrize('implementation', ['flash_attention_2', 'sdpa', NAME])
@pytest.mark.parametrize('family', FAMILIES)
def test_packed_row_reaches_the_llm_padding_free_only_under_flash_attention(family, implementation, tiny_models,
                                                                             monkeypatch):
    model, tokenizer = tiny_models(family)
    model.llm.config._attn_implementation = implementation
    seen = capture_llm_kwargs(model, monkeypatch)
    row = packed_row(model, tokenizer)
    model(**row)
    assert torch.equal(seen['position_ids'], RESTARTING_POSITIONS)
    if implementation == 'flash_attention_2':
        assert seen['attention_mask'] is None
    else:  # SDPA (plain or per-sample) needs the block mask itself
        assert seen['attention_mask'] is row['attention_mask']


@pytest.mark.parametrize('family', FAMILIES)
def test_padded_batch_keeps_its_mask_under_flash_attention(family, tiny_models, monkeypatch):
    model, tokenizer = tiny_models(family)
    model.llm.config._attn_implementation = 'flash_attention_2'
    seen = capture_llm_kwargs(model, monkeypatch)
    batch = pad_collate(make_samples(model), tokenizer.pad_token_id)
    model(**batch)
    assert seen['attention_mask'] is batch['attention_mask'] and seen['position_ids'] is None


def test_packed_row_without_position_ids_fails_under_flash_attention():
    class Config:
        _attn_implementation = 'flash_attention_2'
    mask = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match='needs its position_ids'):
        llm_attention_inputs(Config(), mask, None)


def varlen_reference(query, key, value, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                     softmax_scale=None, causal=False, **kwargs):
    """flash_attn_varlen_func on CPU: [tokens, heads, dim] cut at cu_seqlens, GQA as flash-attn does it."""
    assert torch.equal(cu_seqlens_q, cu_seqlens_k) and dropout_p == 0.0
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    cuts = cu_seqlens_q.tolist()
    pieces = [F.scaled_dot_product_attention(*(t[a:b].transpose(0, 1) for t in (query, key, value)),
                                             scale=softmax_scale, is_causal=causal).transpose(0, 1)
              for a, b in zip(cuts[:-1], cuts[1:])]
    return torch.cat(pieces)


def with_flash_attention_classes(llm, monkeypatch):
    """An LLM that picks its attention classes when built (transformers 4.48's Qwen2-MoE, StableLM) builds the
    flash-attn ones only with flash_attn installed (none on a CPU machine): each SDPA attention module becomes
    its file's flash-attn class (same weights and submodules), as a GPU build would make it, with the helpers
    the file imports only where flash_attn is installed."""
    for module in llm.modules():
        source = sys.modules[type(module).__module__]
        tables = [v for k, v in vars(source).items() if k.endswith('ATTENTION_CLASSES') and isinstance(v, dict)]
        for table in tables:
            if type(module) is table.get('sdpa') and 'flash_attention_2' in table:
                module.__class__ = table['flash_attention_2']
                module._flash_attn_uses_top_left_mask = False
                for name in module.forward.__code__.co_names:
                    if not hasattr(source, name) and hasattr(fa_utils, name):
                        monkeypatch.setattr(source, name, getattr(fa_utils, name), raising=False)


@pytest.mark.parametrize('family', FAMILIES)
def test_transformers_padding_free_path_matches_dense_mask(family, tiny_models, monkeypatch):
    """With a CPU stand-in for flash-attn's kernels, transformers' own flash_attention_2 path on what the
    composed model passes (position_ids, no mask) gives the dense block mask's logits."""
    model, tokenizer = tiny_models(family)
    model = copy.deepcopy(model)
    row = packed_row(model, tokenizer)
    llm, segments = model.llm, []

    def varlen(*args, **kwargs):
        segments.append(kwargs['cu_seqlens_q'].tolist())
        return varlen_reference(*args, **kwargs)

    def whole_row(*args, **kwargs):  # what transformers runs when no position_ids reach the attention
        raise AssertionError(f'{family}: flash-attn would attend across samples (the attention got no position_ids)')
    with torch.no_grad():
        dense = model(**row).logits
        monkeypatch.setattr(fa_utils, 'flash_attn_varlen_func', varlen, raising=False)
        monkeypatch.setattr(fa_utils, 'flash_attn_func', whole_row, raising=False)
        monkeypatch.setattr(fa_utils, '_flash_supports_window_size', False, raising=False)
        with_flash_attention_classes(llm, monkeypatch)
        llm.config._attn_implementation = 'flash_attention_2'
        padding_free = model(**row).logits
    cuts = list(accumulate([0, *LENGTHS, *[1] * PAD]))  # the samples, then each padding token alone
    assert segments == [cuts] * len(REGISTRY.get(family).blocks(llm))
    torch.testing.assert_close(padding_free, dense, atol=1e-5, rtol=0)
