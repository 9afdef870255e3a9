"""MoE-tuning's transform on tiny models: upcycling keeps the dense model's logits and adds (E-1) FFNs
+ an H x E router per MoE layer; layer choice per mode; training loss = CE + 0.01 * sum l_aux; sparse
inference runs k experts per token; trainability `moe` / `moe_lora`; export to native MoE layouts
that plain transformers loads with our dropless logits (Qwen2-MoE / Mixtral in 4.48, Qwen3-MoE in 4.57)."""
import json

import pytest
import torch

from helpers.probes import package_outputs, probe_inputs, run_probe
from vlmtune.side_envs import side_env
from vlmtune.engine import TrainingModel
from vlmtune.formats import load, save
from vlmtune.model.moe import added_parameters, moe_blocks, moe_layer_indices

MOE = {'num_experts': 4, 'top_k': 2}
NATIVE = {'qwen2': 'Qwen2MoeForCausalLM', 'llama': 'MixtralForCausalLM', 'qwen3': 'Qwen3MoeForCausalLM'}


def forward(model, inputs, **extra):
    return model(pixel_values=inputs['pixel_values'], input_ids=inputs['input_ids'],
                 attention_mask=inputs['attention_mask'], image_flags=inputs['image_flags'], **extra)


def test_layer_choice_per_mode():
    assert moe_layer_indices('sparse', 24) == list(range(0, 24, 2)) and len(moe_layer_indices('sparse', 32)) == 16
    assert moe_layer_indices('dense', 4) == [0, 1, 2, 3]
    assert moe_layer_indices('first_half', 6) == [0, 1, 2] and moe_layer_indices('second_half', 6) == [3, 4, 5]
    assert moe_layer_indices([5, 1], 6) == [1, 5]
    with pytest.raises(ValueError, match='0..5'):
        moe_layer_indices([6], 6)
    with pytest.raises(ValueError, match='sparse'):
        moe_layer_indices('every', 6)


@pytest.mark.parametrize('llm', sorted(NATIVE))
def test_upcycled_model_equals_the_dense_one(tiny_folder, llm):
    folder = tiny_folder(llm, '300m', llm_layers=3)
    dense, tokenizer = load(folder)
    moe, _ = load(folder, spec_overrides={'llm': {'moe': MOE}})
    assert [i for i, _ in moe_blocks(moe.llm)] == [0, 2]
    ffn = sum(p.numel() for p in dense.llm.model.layers[0].mlp.parameters())
    hidden = dense.llm.config.hidden_size
    grown = sum(p.numel() for p in moe.parameters()) - sum(p.numel() for p in dense.parameters())
    assert grown == 2 * added_parameters(ffn, hidden, 4) == 2 * (3 * ffn + hidden * 4)
    inputs = probe_inputs(tokenizer, dense.num_image_token)
    with torch.no_grad():
        torch.testing.assert_close(forward(moe, inputs).logits, forward(dense, inputs).logits, atol=1e-5, rtol=0)
    tokens = inputs['input_ids'].numel()
    assert sum(block.expert_calls for _, block in moe_blocks(moe.llm)) == 2 * 2 * tokens  # k per token


def test_training_loss_is_ce_plus_weighted_l_aux(tiny_folder):
    moe, tokenizer = load(tiny_folder('qwen2', '300m', llm_layers=3), spec_overrides={'llm': {'moe': MOE}})
    moe.train()
    inputs = probe_inputs(tokenizer, moe.num_image_token)
    out = forward(moe, inputs, labels=inputs['input_ids'])
    l_aux = sum(block.aux_loss for _, block in moe_blocks(moe.llm))
    assert out.aux_loss is not None and torch.allclose(out.aux_loss, l_aux)
    torch.testing.assert_close(out.loss, out.lm_loss + 0.01 * l_aux)
    assert 2 * 0.5 <= l_aux.item() <= 2 * 4  # per layer between a balanced 1 and a collapsed E, roughly


def test_trainability_moe_and_moe_lora(tiny_folder):
    folder = tiny_folder('qwen2', '300m', llm_layers=3)
    wrapper = TrainingModel(folder, spec={'llm': {'moe': MOE}}, vision_tower='frozen', connector='frozen', llm='moe',
                          dtype='fp32')
    trainable = {n for n, p in wrapper.named_parameters() if p.requires_grad}
    assert trainable and all('.mlp.experts.' in n or '.mlp.gate.' in n for n in trainable)
    assert any('.mlp.gate.' in n for n in trainable) and any('layers.2.mlp.experts.3.' in n for n in trainable)
    lora = TrainingModel(folder, spec={'llm': {'moe': MOE}}, vision_tower='frozen', connector='frozen', llm='moe_lora',
                       dtype='fp32')
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert any('experts.0.gate_proj.lora_A' in n for n in trainable)
    assert any('mlp.gate.modules_to_save' in n for n in trainable)
    assert not any('self_attn' in n for n in trainable)
    with pytest.raises(ValueError, match='llm.moe'):
        TrainingModel(folder, llm='moe', dtype='fp32')


@pytest.fixture(scope='module')
def exported(tiny_folder, tmp_path_factory):
    """Per family: the upcycled model (routers randomised so routing matters), its native export, inputs."""
    out = {}
    for llm in NATIVE:
        model, tokenizer = load(tiny_folder(llm, '300m', llm_layers=3), spec_overrides={'llm': {'moe': MOE}})
        torch.manual_seed(1)
        with torch.no_grad():
            for _, block in moe_blocks(model.llm):
                block.gate.weight.normal_(0, 1.0)
                for expert in block.experts:  # experts apart, so the routing shows in the logits
                    for p in expert.parameters():
                        p.add_(0.02 * torch.randn_like(p))
        folder = save(model, tokenizer, tmp_path_factory.mktemp(f'moe-{llm}') / f'moe_{llm}', dtype='fp32')
        inputs = probe_inputs(tokenizer, model.num_image_token)
        out[llm] = (model.eval(), tokenizer, folder, inputs)
    return out


@pytest.mark.parametrize('llm', sorted(NATIVE))
def test_export_is_the_native_moe_architecture(exported, llm):
    model, _, folder, inputs = exported[llm]
    cfg = json.loads((folder / 'config.json').read_text())['llm_config']
    assert cfg['architectures'] == [NATIVE[llm]]
    native, _ = load(folder)
    assert type(native.llm).__name__ == NATIVE[llm]
    with torch.no_grad():
        ours, theirs = forward(model, inputs).logits, forward(native, inputs).logits
    assert (ours - forward_dense_like(model, inputs)).abs().max() > 1e-3  # the experts differ: routing matters
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


def forward_dense_like(model, inputs):
    """Logits with every MoE layer's first expert alone: what the model would give if routing did nothing."""
    saved = []
    for _, block in moe_blocks(model.llm):
        saved.append(block.gate.weight.clone())
        block.gate.weight.data.zero_()
        block.gate.weight.data[0] = 100.0
    with torch.no_grad():
        logits = forward(model, inputs).logits
    for (_, block), weight in zip(moe_blocks(model.llm), saved):
        block.gate.weight.data.copy_(weight)
    return logits


@pytest.mark.side_envs
@pytest.mark.parametrize('llm', sorted(NATIVE))
def test_exported_folder_loads_in_plain_transformers(exported, llm, tmp_path):
    """The folder's own remote code, vlmtune hidden: transformers' Qwen2-MoE / Mixtral classes in 4.48,
    its Qwen3-MoE in 4.57 (our shipped copy in 4.48): logits and answers equal our dropless inference."""
    model, tokenizer, folder, inputs = exported[llm]
    ref_logits, ref_answers = package_outputs(model, tokenizer, inputs)
    envs = [None] + ([side_env('tf-4.57')] if llm == 'qwen3' else [])
    for i, env in enumerate(envs):
        (tmp_path / str(i)).mkdir()
        probe = run_probe(folder, inputs, tmp_path / str(i), pythonpath=env)
        assert not probe['vlmtune_imported'] and probe['answers'] == ref_answers
        torch.testing.assert_close(probe['logits'].float(), ref_logits, atol=1e-4, rtol=0)


def test_unsupported_family_says_what_is_supported(tiny_folder, tmp_path):
    model, tokenizer = load(tiny_folder('phi3', '300m'), spec_overrides={'llm': {'moe': MOE}})
    from vlmtune.formats.common import CheckpointError
    from vlmtune.model.moe.export import native_targets
    with pytest.raises(CheckpointError) as raised:
        save(model, tokenizer, tmp_path / 'out', layout='internvl')
    assert {'qwen3': 'qwen3_moe', 'qwen2': 'qwen2_moe', 'llama': 'mixtral'}.items() <= native_targets().items()
    assert all(f'{dense} -> {moe}' in str(raised.value) for dense, moe in native_targets().items())
    assert not (tmp_path / 'out').exists()
    save(model, tokenizer, tmp_path / 'lossless', layout='vlmtune', dtype='fp32')
    again, _ = load(tmp_path / 'lossless')
    assert [i for i, _ in moe_blocks(again.llm)] == [0]


def test_llava_hf_export_is_mixtral_that_transformers_4_48_runs(tmp_path):
    """A LLaVA composition (CLIP + Llama) upcycled and saved in its own llava_hf layout: transformers'
    LlavaForConditionalGeneration builds a MixtralForCausalLM text model and gives our dropless logits."""
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration
    from vlmtune.tiny import TinyLlavaSpec, make_tiny_llava_folder
    base = make_tiny_llava_folder(tmp_path / 'base', TinyLlavaSpec(image_size=56))
    model, tokenizer = load(base, spec_overrides={'llm': {'moe': MOE}})
    torch.manual_seed(2)
    with torch.no_grad():
        for _, block in moe_blocks(model.llm):
            block.gate.weight.normal_(0, 1.0)
            for expert in block.experts:
                for p in expert.parameters():
                    p.add_(0.02 * torch.randn_like(p))
    out = save(model, tokenizer, tmp_path / 'moe', dtype='fp32')
    assert json.loads((out / 'config.json').read_text())['text_config']['architectures'] == ['MixtralForCausalLM']
    processor = AutoProcessor.from_pretrained(str(out))
    inputs = processor(images=Image.new('RGB', (80, 40), (200, 30, 30)), text='USER: <image>\nWhat colour? ASSISTANT:',
                       return_tensors='pt')
    theirs, info = LlavaForConditionalGeneration.from_pretrained(str(out), output_loading_info=True)
    assert not info['missing_keys'] and not info['unexpected_keys'], info
    assert type(theirs.language_model).__name__ == 'MixtralForCausalLM'
    with torch.no_grad():
        expected = model.eval()(**inputs).logits
        torch.testing.assert_close(theirs.eval()(**inputs).logits, expected, atol=1e-4, rtol=0)


def test_internvl_hf_export_holds_the_native_moe(exported, tmp_path):
    model, tokenizer, _, inputs = exported['qwen2']
    out = save(model, tokenizer, tmp_path / 'hf', layout='internvl_hf', dtype='fp32')
    text = json.loads((out / 'config.json').read_text())['text_config']
    assert text['architectures'] == ['Qwen2MoeForCausalLM'] and text['model_type'] == 'qwen2_moe'
    back, _ = load(out)
    with torch.no_grad():
        torch.testing.assert_close(forward(back, inputs).logits, forward(model, inputs).logits, atol=1e-5, rtol=0)


def test_router_z_loss_adds_to_the_aux_term(tiny_folder):
    folder = tiny_folder('qwen2', '300m', llm_layers=3)
    plain, tokenizer = load(folder, spec_overrides={'llm': {'moe': MOE}})
    with_z, _ = load(folder, spec_overrides={'llm': {'moe': dict(MOE, router_z_loss_coef=0.1)}})
    with_z.load_state_dict(plain.state_dict())
    inputs = probe_inputs(tokenizer, plain.num_image_token)
    a, b = forward(plain.train(), inputs, labels=inputs['input_ids']), forward(
        with_z.train(), inputs, labels=inputs['input_ids'])
    assert b.aux_loss > a.aux_loss and torch.allclose(b.lm_loss, a.lm_loss)  # same model, z-loss on top
    torch.testing.assert_close(b.loss - b.lm_loss, 0.01 * b.aux_loss)
