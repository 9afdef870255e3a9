"""Save -> load round trips and loading saved folders with plain transformers (vlmtune hidden),
for every LLM family and both ViT flavours."""
import json

import pytest
import torch
from safetensors import safe_open

from helpers.probes import package_outputs, probe_inputs, run_probe
from vlmtune.formats import load, save
from vlmtune.formats.internvl import held_llms
from vlmtune.formats.internvl_remote.conversation import get_conv_template
from vlmtune.tiny import TinySpec, build_tiny_model

FAMILIES = [entry.family for entry in held_llms()]  # every LLM family the official layout holds
VITS = ['300m', '6b']


@pytest.mark.parametrize('vit', VITS)
@pytest.mark.parametrize('llm', FAMILIES)
def test_save_load_round_trip_and_remote_code(llm, vit, tmp_path):
    model, tokenizer = build_tiny_model(TinySpec(llm=llm, vit=vit))
    folder = save(model, tokenizer, tmp_path / 'saved', dtype='fp32')
    loaded, loaded_tok = load(folder)

    original, reloaded = model.state_dict(), loaded.state_dict()
    assert original.keys() == reloaded.keys()
    for key in original:
        assert torch.equal(original[key], reloaded[key]), key

    inputs = probe_inputs(tokenizer, model.num_image_token)
    ref_logits, ref_answers = package_outputs(model, tokenizer, inputs)
    logits, answers = package_outputs(loaded, loaded_tok, inputs)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)
    assert answers == ref_answers
    assert all(isinstance(a, str) for a in answers)

    probe = run_probe(folder, inputs, tmp_path)
    assert not probe['vlmtune_imported']
    torch.testing.assert_close(probe['logits'].float(), ref_logits, atol=1e-4, rtol=0)
    assert probe['answers'] == ref_answers

    # The tokenizer's chat_template renders exactly what the template code builds.
    conv = get_conv_template(model.template.name)
    conv.append_message(conv.roles[0], '<image>\nWhat is in the image?')
    conv.append_message(conv.roles[1], 'A cat.')
    conv.append_message(conv.roles[0], 'What color is it?')
    conv.append_message(conv.roles[1], None)
    assert probe['chat_template_prompt'] == conv.get_prompt()


def test_official_config_fields_and_bf16_default(tiny_folder, tmp_path):
    model, tokenizer = load(tiny_folder('internlm2', '6b'))
    out = save(model, tokenizer, tmp_path / 'bf16')
    cfg = json.loads((out / 'config.json').read_text())
    for key in ('vision_config', 'llm_config', 'downsample_ratio', 'ps_version', 'select_layer', 'template',
                'force_image_size', 'dynamic_image_size', 'use_thumbnail', 'min_dynamic_patch',
                'max_dynamic_patch', 'use_backbone_lora', 'use_llm_lora', 'pad2square', 'hidden_size',
                'tie_word_embeddings', 'torch_dtype', 'transformers_version', 'auto_map'):
        assert key in cfg, key
    assert 'system_message' not in cfg
    assert cfg['architectures'] == ['InternVLChatModel'] and cfg['model_type'] == 'internvl_chat'
    assert cfg['auto_map']['AutoModel'] == 'modeling_internvl_chat.InternVLChatModel'
    assert cfg['vision_config']['model_type'] == 'intern_vit_6b'
    assert cfg['llm_config']['auto_map']['AutoModelForCausalLM'] == 'modeling_internlm2.InternLM2ForCausalLM'
    assert cfg['torch_dtype'] == 'bfloat16' and cfg['tie_word_embeddings'] is False
    with safe_open(str(out / 'model.safetensors'), 'pt') as handle:
        assert {handle.get_slice(k).get_dtype() for k in handle.keys()} == {'BF16'}
    gen = json.loads((out / 'generation_config.json').read_text())
    assert tokenizer.convert_tokens_to_ids('<|im_end|>') in gen['eos_token_id']
    tok_cfg = json.loads((out / 'tokenizer_config.json').read_text())
    assert tok_cfg['auto_map']['AutoTokenizer'][0] == 'tokenization_internlm2.InternLM2Tokenizer'
    for name in ('modeling_internvl_chat.py', 'modeling_intern_vit.py', 'conversation.py',
                 'configuration_internvl_chat.py', 'configuration_intern_vit.py', 'modeling_internlm2.py',
                 'tokenization_internlm2.py', 'tokenizer.model'):
        assert (out / name).exists(), name
    bf16_model, _ = load(out)
    for key, tensor in model.state_dict().items():
        assert torch.equal(bf16_model.state_dict()[key], tensor.to(torch.bfloat16).float()), key


def test_sharded_save_loads_identically(tiny_folder, tmp_path):
    model, tokenizer = load(tiny_folder('qwen2', '300m'))
    out = save(model, tokenizer, tmp_path / 'sharded', dtype='fp32', max_shard_size_gb=200e3 / 1024 ** 3)
    index = json.loads((out / 'model.safetensors.index.json').read_text())
    shards = sorted(set(index['weight_map'].values()))
    assert len(shards) > 1 and not (out / 'model.safetensors').exists()
    assert shards[0] == f'model-00001-of-{len(shards):05d}.safetensors'
    reloaded, _ = load(out)
    for key, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], tensor), key


def test_qwen2_tokenizer_json_uses_legacy_merges(tiny_folder):
    data = json.loads((tiny_folder('qwen2', '300m') / 'tokenizer.json').read_text())
    assert data['model']['merges'] and all(isinstance(m, str) and ' ' in m for m in data['model']['merges'])


def test_base_folder_remote_code_is_kept(tiny_folder, tmp_path):
    import shutil
    base = tmp_path / 'base'
    shutil.copytree(tiny_folder('qwen2', '300m'), base)
    marker = '\n# official remote code marker\n'
    with open(base / 'conversation.py', 'a') as handle:
        handle.write(marker)
    model, tokenizer = load(base)
    out = save(model, tokenizer, tmp_path / 'out', base_folder=base)
    assert (out / 'conversation.py').read_text().endswith(marker)
