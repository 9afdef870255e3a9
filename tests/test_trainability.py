"""Every vision_tower x connector x llm trainability combination builds and trains a step; frozen weights
stay bit-identical, trained ones change; LoRA targets come from the components; partial:K trains
blocks K.. only."""
import itertools

import pytest
import torch

from helpers.training_data import make_colour_dataset
from vlmtune.data.collate import pad_collate
from vlmtune.engine import TrainingModel, build_train_dataset

MODES = ('frozen', 'lora', 'full')
COMBOS = [c for c in itertools.product(MODES, MODES, MODES) if c != ('frozen', 'frozen', 'frozen')]


@pytest.fixture(scope='module')
def setup(tiny_folder, tmp_path_factory):
    folder = tiny_folder('internlm2', '6b')
    data, images = make_colour_dataset(tmp_path_factory.mktemp('colours'), n=4)
    dataset = build_train_dataset(folder, data, images, max_length=256, max_tiles=2)
    batch = pad_collate([dataset[i] for i in range(4)], 0)
    return folder, batch


@pytest.mark.parametrize('vision_tower,connector,llm', COMBOS)
def test_combination_trains_only_configured_parts(setup, vision_tower, connector, llm):
    folder, batch = setup
    torch.manual_seed(0)
    wrapper = TrainingModel(folder, vision_tower=vision_tower, connector=connector, llm=llm, lora=dict(r=4, alpha=8, dropout=0.0),
                          dtype='fp32', gradient_checkpointing=True)
    before = {k: v.detach().clone() for k, v in wrapper.model.named_parameters()}
    trainable = {k for k, p in wrapper.model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in wrapper.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # LoRA B starts at zero, so A only moves on the second step
        loss = wrapper(batch, mode='loss')['loss']
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = dict(wrapper.model.named_parameters())
    for part, mode in zip(('vision_tower', 'connector', 'llm'), (vision_tower, connector, llm)):
        names = [k for k in before if k.startswith(part + '.')]
        changed = [k for k in names if not torch.equal(before[k], after[k])]
        if mode == 'frozen':
            assert not changed and not any(k in trainable for k in names), part
        elif mode == 'full':
            assert all(k in trainable for k in names), part
            assert changed, part
        else:
            lora = [k for k in names if '.lora_' in k]
            assert lora and set(lora) == {k for k in names if k in trainable}, part
            assert all(k in changed for k in lora), part
            assert not [k for k in changed if '.lora_' not in k], part  # base weights untouched
    assert set(wrapper.state_dict()) == {k for k, p in wrapper.named_parameters() if p.requires_grad}


def test_all_frozen_and_unknown_mode_are_errors(setup):
    folder, _ = setup
    with pytest.raises(ValueError, match='nothing is trainable'):
        TrainingModel(folder, vision_tower='frozen', connector='frozen', llm='frozen', dtype='fp32')
    with pytest.raises(ValueError, match="llm='qlora' is not a trainability mode"):
        TrainingModel(folder, llm='qlora', dtype='fp32')


@pytest.mark.parametrize('llm,expected', [
    ('qwen2', {'q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'}),
    ('llama', {'q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'}),
    ('phi3', {'qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'}),
    # the official InternLM2 targets wqkv, wo, w1, w3, w2 under the package's names
    ('internlm2', {'wqkv', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'}),
    ('qwen3', {'q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'}),
    # every expert's FFN; not the router `mlp.gate`
    ('qwen3_moe', {'q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'}),
])
def test_lora_targets_per_backbone(tiny_folder, llm, expected, capsys):
    wrapper = TrainingModel(tiny_folder(llm, '300m'), llm='lora', vision_tower='lora', dtype='fp32')
    lora_modules = {name.split('.lora_A.')[0].rsplit('.', 1)[-1] for name, _ in wrapper.named_parameters()
                    if '.llm.' in name and '.lora_A.' in name}
    assert lora_modules == expected
    vit_modules = {name.split('.lora_A.')[0].split('layers.0.')[-1] for name, _ in wrapper.named_parameters()
                   if 'vision_tower' in name and 'layers.0.' in name and '.lora_A.' in name}
    assert vit_modules == {'attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'}


@pytest.mark.parametrize('part,attr', [('vision_tower', 'vision_tower'), ('llm', 'llm')])
def test_partial_trains_blocks_from_k(setup, part, attr):
    """partial:1 (TinyLLaVA's partially-tune): block 0 and everything outside the blocks stay frozen."""
    folder, batch = setup
    wrapper = TrainingModel(folder, **{part: 'partial:1'}, connector='frozen', **({'llm': 'frozen'} if part == 'vision_tower'
                                                                              else {}), dtype='fp32')
    names = {k for k, p in wrapper.model.named_parameters() if p.requires_grad}
    assert names and all(k.startswith(attr + '.') and '.layers.1.' in k for k in names)
    assert any('.layers.1.' in k for k, _ in wrapper.model.named_parameters() if k.startswith(attr + '.'))
    before = {k: v.detach().clone() for k, v in wrapper.model.named_parameters()}
    wrapper(batch, mode='loss')['loss'].backward()
    torch.optim.SGD([p for p in wrapper.parameters() if p.requires_grad], lr=1.0).step()
    changed = {k for k, v in wrapper.model.named_parameters() if not torch.equal(before[k], v)}
    assert changed and changed <= names
    with pytest.raises(ValueError, match='K must be 0..1'):
        TrainingModel(folder, **{part: 'partial:2'}, dtype='fp32')


def test_trainable_count_is_printed(tiny_folder, capsys):
    from mmengine.logging import MMLogger
    MMLogger.get_instance('vlmtune-test')
    TrainingModel(tiny_folder('qwen2', '300m'), llm='lora', dtype='fp32')
    out = capsys.readouterr().out
    assert 'LoRA on llm: ' in out and 'trainable parameters: ' in out


def test_qlora_needs_gpu(tiny_folder):
    if torch.cuda.is_available():
        pytest.skip('GPU present: QLoRA is exercised by the GPU scripts')
    with pytest.raises(RuntimeError, match='QLoRA .* needs a CUDA GPU'):
        TrainingModel(tiny_folder('qwen2', '300m'), llm='lora', quantization='nf4', dtype='fp32')


def test_non_finite_loss_stops_with_diagnosis(setup):
    from vlmtune.engine.training_model import NonFiniteLossError
    folder, batch = setup
    wrapper = TrainingModel(folder, dtype='fp32')
    with torch.no_grad():
        next(p for n, p in wrapper.named_parameters() if 'lora_A' in n).fill_(float('nan'))
        next(p for n, p in wrapper.named_parameters() if 'lora_B' in n).fill_(1.0)
    with pytest.raises(NonFiniteLossError, match='loss is nan at step .*learning rate'):
        wrapper(batch, mode='loss')


def test_moe_router_trains_fully_only_when_asked(tiny_folder, tmp_path):
    """The router stays frozen under LoRA unless lora.modules_to_save names it; then it trains
    fully (the aux loss reaches it) and merging leaves plain transformers names."""
    from vlmtune.engine.convert import merge_lora
    folder = tiny_folder('qwen3_moe', '300m')
    default = TrainingModel(folder, llm='lora', dtype='fp32')
    assert not any('mlp.gate.' in n for n, p in default.named_parameters() if p.requires_grad)
    asked = TrainingModel(folder, llm='lora', dtype='fp32', lora=dict(modules_to_save=['mlp.gate']))
    routers = [n for n, p in asked.named_parameters() if p.requires_grad and 'mlp.gate.' in n]
    assert len(routers) == 2 and all('modules_to_save' in n for n in routers)  # the tiny model's 2 MoE layers
    data, images = make_colour_dataset(tmp_path, n=2)
    batch = pad_collate([build_train_dataset(folder, data, images, max_length=256, max_tiles=2)[i] for i in range(2)], 0)
    losses = asked(batch)
    assert set(losses) == {'lm_loss', 'moe_aux_loss'} and losses['moe_aux_loss'] > 0
    (losses['lm_loss'] + losses['moe_aux_loss']).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in asked.named_parameters() if n in routers)
    merge_lora(asked.model)
    names = set(asked.model.llm.state_dict())
    assert 'model.layers.0.mlp.gate.weight' in names and not any('modules_to_save' in n or 'lora' in n for n in names)
    with pytest.raises(ValueError, match='modules_to_save'):
        TrainingModel(folder, llm='lora', dtype='fp32', lora=dict(modules_to_save=['router']))


def test_qlora_keeps_head_and_moe_routers_in_full_precision(tiny_folder):
    from vlmtune.model.quantize import quantizable_linears
    from vlmtune.formats import load
    model, _ = load(tiny_folder('qwen3_moe', '300m'))
    names = {name for parent, name, child in quantizable_linears(model.llm)}
    every = {n.rsplit('.', 1)[-1] for n, m in model.llm.named_modules() if isinstance(m, torch.nn.Linear)}
    assert every - names == {'gate', 'lm_head'}
    assert {'q_proj', 'gate_proj', 'down_proj'} <= names
