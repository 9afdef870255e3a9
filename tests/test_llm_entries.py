"""Every registered LLM family entry (model/llm/entry.py) against transformers' own classes, generated from the
registry: the entry's model computes transformers' logits, the training loss through the package's
labelled-positions path (the entry's `logits`: soft-capping and the like) equals transformers' loss on the
same labels, every LoRA target matches a Linear, and what the entry names exists. A family registered
tomorrow is covered with no test edit. Families transformers 4.48 does not have (their own code: InternLM2,
Qwen3) are checked against their layout owners (test_contracts.py) and their own parity tests."""
import copy
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from helpers.probes import REPO

from vlmtune.data.templates import REGISTRY as TEMPLATES
from vlmtune.model.llm import REGISTRY as LLMS
from vlmtune.side_envs import side_env
from vlmtune.tiny import compose_tiny

FAMILIES = LLMS.names()
ENGINES = {'vllm', 'lmdeploy-pytorch', 'turbomind'}
HEAD_SCALE = 25.0


@pytest.fixture(scope='module')
def tiny():
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = compose_tiny(llm=family, template=None)
        return cache[family]
    return get


def twin_outputs(entry, model, ids, embeds, labels, tmp_path) -> dict:
    """transformers' own class with the entry model's weights: logits on `ids`, the loss on `embeds` / `labels`.
    In this process (the pinned transformers), or in the entry's oracle side environment."""
    if entry.oracle_env:
        folder = tmp_path / 'llm'
        model.llm.save_pretrained(str(folder), safe_serialization=True)
        torch.save({'ids': ids, 'embeds': embeds.detach(), 'labels': labels}, tmp_path / 'in.pt')
        environ = dict(os.environ, PYTHONPATH=str(side_env(entry.oracle_env)), HF_HUB_OFFLINE='1')
        done = subprocess.run([sys.executable, str(REPO / 'tests' / 'probes' / 'llm_twin_probe.py'), str(folder),
                               str(tmp_path / 'in.pt'), str(tmp_path / 'out.pt')], cwd=REPO / 'tests' / 'probes',
                              env=environ, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        out = torch.load(tmp_path / 'out.pt', weights_only=False)
        assert not out['missing'] and not out['unexpected'] and not out['vlmtune_imported'], out
        return out
    from transformers import AutoModelForCausalLM
    twin = AutoModelForCausalLM.from_config(model.llm.config, attn_implementation='eager').eval()
    result = twin.load_state_dict(model.llm.state_dict(), strict=False)
    assert not result.missing_keys and not result.unexpected_keys, result
    with torch.no_grad():
        return {'logits': twin(input_ids=ids).logits, 'loss': twin(inputs_embeds=embeds, labels=labels).loss}


def batch_of(model, tokenizer):
    prompt = model.image_tokens.expand(model.prompt('<image>\nWhat colour is it?'), [1])
    ids = tokenizer(prompt + ' It is red, green and blue.', return_tensors='pt').input_ids
    labels = ids.clone()
    labels[:, :ids.shape[1] // 2] = -100
    gen = torch.Generator().manual_seed(0)
    return dict(pixel_values=torch.randn(1, 3, 56, 56, generator=gen), input_ids=ids,
                image_flags=torch.ones(1, 1, dtype=torch.long)), labels


@pytest.mark.parametrize('family', FAMILIES)
def test_entry_names_what_exists(family, tiny):
    entry = LLMS.get(family)
    model, _ = tiny(family)
    assert entry.family == family and type(model.llm).__name__ == entry.architecture
    assert entry.default_template in TEMPLATES and set(entry.engines) <= ENGINES
    assert entry.native_moe is None or entry.native_moe in LLMS
    assert entry.head_bias == (model.llm.get_output_embeddings().bias is not None), family
    assert entry.blocks(model.llm) and all(isinstance(b, nn.Module) for b in entry.blocks(model.llm))
    linears = [name for name, module in model.llm.named_modules() if isinstance(module, nn.Linear)]
    for target in entry.lora_targets:
        assert any(n == target or n.endswith('.' + target) for n in linears), (family, target)
    if not entry.in_transformers:  # its own code: a layout owner must run it (key map or shipped files)
        assert entry.key_map is not None or entry.shipped_files, family


@pytest.mark.parametrize('family', [f for f in FAMILIES if LLMS.get(f).in_transformers])
def test_logits_and_training_loss_equal_transformers_own_class(family, tiny, tmp_path):
    """Logits on text ids, and the package's loss (labelled positions only for a dense LLM; an MoE LLM's LM loss,
    without the router term) = transformers' own forward's loss on the same spliced embeddings and labels. The
    head is scaled to trained-model logit sizes (tens), so a soft-cap or any other head transform shows; biases
    are drawn off zero, so a bias one side drops shows."""
    model, tokenizer = tiny(family)
    model, entry = copy.deepcopy(model), LLMS.get(family)
    with torch.no_grad():
        model.llm.get_output_embeddings().weight.mul_(HEAD_SCALE)
        for name, parameter in model.llm.named_parameters():  # biases off their zero init: a dropped one shows
            if name.endswith('bias') and not parameter.any():
                parameter.normal_(0, 0.5, generator=torch.Generator().manual_seed(2))
    ids = torch.randint(3, model.llm.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(1))
    inputs, labels = batch_of(model, tokenizer)
    model.train()
    out = model(**inputs, labels=labels, return_logits=False)
    model.eval()
    embeds = model.splice(inputs['input_ids'], model.image_embeddings(inputs['pixel_values'], inputs['image_flags']))
    theirs = twin_outputs(entry, model, ids, embeds, labels, tmp_path)
    with torch.no_grad():
        ours = model.llm(input_ids=ids).logits
    assert (ours - theirs['logits']).abs().max().item() <= 1e-5 * max(1.0, theirs['logits'].abs().max().item())
    loss = theirs['loss'].item()
    assert abs(out.lm_loss.item() - loss) <= 1e-6 * max(1.0, loss), (family, out.lm_loss.item(), loss)


@pytest.mark.parametrize('family', FAMILIES)
def test_builds_under_every_attention_name_with_equal_logits(family, tiny):
    """eager, sdpa and the package's sdpa_packed (a recipe's model.attn_implementation) all build the family and
    compute the same logits (a class that picks its attention when built keeps SDPA under sdpa_packed)."""
    model, _ = tiny(family)
    entry, settings = LLMS.get(family), model.spec.settings('llm')
    ids = torch.randint(3, model.llm.config.vocab_size, (1, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = model.llm(input_ids=ids).logits
        for name in ('eager', 'sdpa', 'sdpa_packed'):
            llm = entry.build(settings, name).eval()
            llm.load_state_dict(model.llm.state_dict())
            torch.testing.assert_close(llm(input_ids=ids).logits, reference, atol=1e-5, rtol=0, msg=name)


def test_readme_families_table_is_the_registry():
    """README's LLM families table: one row per registered family, with its entry's architecture, default
    template, engines, packing and LoRA targets (module names, `a/b_proj` written out)."""
    import re
    text = (REPO / 'README.md').read_text(encoding='utf-8')
    rows = re.findall(r'^\| `(\w+)` \| `(\w+)` \| `([\w.-]+)` \| ([^|]+) \| (yes|no) \| ([^|]+) \|$', text, re.M)
    assert sorted(row[0] for row in rows) == sorted(LLMS.names())

    def names(cell):  # 'q/k/v/o_proj, gate/up/down_proj' -> {'q_proj', ..., 'down_proj'}
        out = set()
        for item in cell.split(', '):
            head, _, tail = item.strip().rpartition('_')
            out |= {f'{p}_{tail}' for p in head.split('/')} if '/' in head else {item.strip()}
        return out
    for family, architecture, template, engines, packing, targets in rows:
        entry = LLMS.get(family)
        assert (architecture, template, packing == 'yes') == (entry.architecture, entry.default_template, entry.packing)
        assert tuple(e.strip() for e in engines.split(',') if e.strip() != '—') == entry.engines, family
        assert names(targets) == {t.rsplit('.', 1)[-1] for t in entry.lora_targets}, family


def test_a_family_may_bring_its_own_tiny_tokenizer(monkeypatch, tmp_path):
    """An entry's tiny_tokenizer may be a function (the family's own kind): the tiny factory calls it with the
    template's specials (end-of-turn last), the vocabulary size, a folder and the corpus."""
    import dataclasses
    from vlmtune.tiny import TinySpec, train_bpe_tokenizer
    from vlmtune.tiny.internvl import build_tokenizer
    calls = []

    def own(specials, vocab_size, workdir, corpus):
        calls.append((list(specials), vocab_size))
        tok = train_bpe_tokenizer(specials, vocab_size, workdir, corpus)
        tok.add_tokens(['<own-kind>'], special_tokens=True)
        return tok
    monkeypatch.setitem(LLMS._entries, 'qwen2', dataclasses.replace(LLMS.get('qwen2'), tiny_tokenizer=own))
    tok = build_tokenizer(TinySpec(llm='qwen2', vocab_size=300), 'internvl2_5', tmp_path)
    assert calls == [(['<|im_start|>', '<|im_end|>'], 300)] and '<own-kind>' in tok.get_vocab()
    assert tok.eos_token == '<|im_end|>' and '<IMG_CONTEXT>' in tok.get_vocab()
