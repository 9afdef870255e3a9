"""Every registered LLM family entry (model/llm/entry.py) against transformers' own classes, generated from the
registry: the entry's model computes transformers' logits, the training loss through the package's
labelled-positions path (the entry's `logits`: soft-capping and the like) equals transformers' loss on the
same labels, every LoRA target matches a Linear, and what the entry names exists. A family registered
tomorrow is covered with no test edit. Families transformers 4.48 does not have (their own code: InternLM2,
Qwen3) are checked against their layout owners (test_contracts.py) and their own parity tests."""
import pytest
import torch
from torch import nn

from vlmtune.data.templates import REGISTRY as TEMPLATES
from vlmtune.model.llm import REGISTRY as LLMS
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


def transformers_twin(entry, model):
    """transformers' own class for the entry's config, with the entry model's weights."""
    from transformers import AutoModelForCausalLM
    twin = AutoModelForCausalLM.from_config(model.llm.config, attn_implementation='eager').eval()
    result = twin.load_state_dict(model.llm.state_dict(), strict=False)
    assert not result.missing_keys and not result.unexpected_keys, result
    return twin


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
    assert entry.blocks(model.llm) and all(isinstance(b, nn.Module) for b in entry.blocks(model.llm))
    linears = [name for name, module in model.llm.named_modules() if isinstance(module, nn.Linear)]
    for target in entry.lora_targets:
        assert any(n == target or n.endswith('.' + target) for n in linears), (family, target)
    if not entry.in_transformers:  # its own code: a layout owner must run it (key map or shipped files)
        assert entry.key_map is not None or entry.shipped_files, family


@pytest.mark.parametrize('family', [f for f in FAMILIES if LLMS.get(f).in_transformers])
def test_logits_equal_transformers_own_class(family, tiny):
    model, _ = tiny(family)
    twin = transformers_twin(LLMS.get(family), model)
    ids = torch.randint(3, model.llm.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model.llm(input_ids=ids).logits, twin(input_ids=ids).logits
    assert (ours - theirs).abs().max().item() <= 1e-5


@pytest.mark.parametrize('family', [f for f in FAMILIES if LLMS.get(f).in_transformers])
def test_training_loss_equals_transformers_loss(family, tiny):
    """The package's loss (labelled positions only for a dense LLM) = transformers' own forward's loss on
    the same spliced embeddings and labels (for an MoE LLM: its LM loss, without the router term)."""
    model, tokenizer = tiny(family)
    with torch.no_grad():  # logits of tens, as trained models have: a soft-cap or any other head transform shows
        model.llm.get_output_embeddings().weight.mul_(HEAD_SCALE)
    try:
        twin = transformers_twin(LLMS.get(family), model)
        inputs, labels = batch_of(model, tokenizer)
        _compare_losses(family, model, twin, inputs, labels)
    finally:
        with torch.no_grad():
            model.llm.get_output_embeddings().weight.div_(HEAD_SCALE)


def _compare_losses(family, model, twin, inputs, labels):
    model.train()
    try:
        out = model(**inputs, labels=labels, return_logits=False)
    finally:
        model.eval()
    embeds = model.splice(inputs['input_ids'], model.image_embeddings(inputs['pixel_values'], inputs['image_flags']))
    with torch.no_grad():
        theirs = twin(inputs_embeds=embeds, labels=labels).loss
    assert abs(out.lm_loss.item() - theirs.item()) <= 1e-6 * max(1.0, theirs.item()), (family, out.lm_loss.item(), theirs.item())


def test_lora_targets_table(capsys):
    """Printed for the record (the closing note's table); every family has targets."""
    rows = [(family, ', '.join(LLMS.get(family).lora_targets)) for family in FAMILIES]
    print('\n| family | LoRA targets |\n|---|---|\n' + '\n'.join(f'| {f} | {t} |' for f, t in rows))
    assert all(targets for _, targets in rows)
