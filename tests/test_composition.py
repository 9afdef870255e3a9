"""The composed model: InternVL folders byte-identical to those written before the model became a
composition, one source for image tokens, the template registry behind prompts and the exported
chat_template, spec overrides, and building from parts (InternViT folder + LLM folder + fresh
connector) through training, conversion and the exported remote code."""
import hashlib
import json
import subprocess
import sys

import pytest
import torch
from transformers.utils.chat_template_utils import _compile_jinja_template

from helpers.probes import package_outputs, probe_inputs, REPO, run_probe
from helpers.parts import parts_spec
from helpers.training_data import make_colour_dataset
from vlmtune.data.dataset import ConversationDataset
from vlmtune.data.show import describe_sample
from vlmtune.data.templates import REGISTRY as TEMPLATES
from vlmtune.data.templates import get_template
from vlmtune.data.templates.base import INTERNVL_IMAGE
from vlmtune.formats import data_spec_for_folder, load, read_spec, save
from vlmtune.formats.inspect import inspect_folder
from vlmtune.formats.internvl_remote.conversation import get_conv_template
from vlmtune.engine.model_source import build_model
from vlmtune.model.connector.pixel_shuffle_mlp import PixelShuffleMLP
from vlmtune.model.spec import SpecError
from vlmtune.model.vlm import VisionLanguageModel
from vlmtune.tiny import TinySpec, make_tiny_folder

GOLDEN = json.loads((REPO / 'tests' / 'data' / 'internvl_folders_before_refactor.json').read_text())


def digests(folder, variant):
    return {f'{variant}/{p.name}': hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.suffix != '.py' and p.name not in ('README.md', 'tiny_spec.json')}


@pytest.mark.parametrize('name', sorted(GOLDEN))
def test_internvl_folders_equal_the_ones_saved_before_the_composition(name, tmp_path):
    """Config, tokenizer, generation config and weights files: byte for byte (recorded with the old
    saver on the same specs); the remote code (.py) and its README are the product and may change."""
    case = GOLDEN[name]
    folder = make_tiny_folder(tmp_path / 'fp32', TinySpec(**case['spec']))
    model, tokenizer = load(folder)
    resaved = save(model, tokenizer, tmp_path / 'bf16', dtype='bf16', base_folder=folder)
    # tiny_spec.json is the factory's record of its own inputs (it grows with TinySpec), not the layout's
    recorded = {k: v for k, v in case['sha256'].items() if not k.endswith('/tiny_spec.json')}
    assert {**digests(folder, 'fp32'), **digests(resaved, 'bf16_resave')} == recorded


ROW = {'id': 'r', 'image': 'wide.png', 'conversations': [{'from': 'human', 'value': '<image>\nWhat is it?'},
                                                          {'from': 'gpt', 'value': 'A cat.'}]}


def test_every_consumer_asks_the_spec_for_image_tokens(tiny_folder, tmp_path, monkeypatch):
    """Change what the connector says it outputs per tile: encoding, the length cache, data show,
    inspect and the model's chat prompt all follow, because none of them counts on its own."""
    from PIL import Image
    folder = tiny_folder('qwen2', '300m')
    Image.new('RGB', (112, 56), 'red').save(tmp_path / 'wide.png')  # 2x1 grid + thumbnail = 3 tiles
    (tmp_path / 'data.jsonl').write_text(json.dumps(ROW) + '\n')
    baseline = data_spec_for_folder(folder)
    assert baseline.image_tokens.per_tile == 4
    monkeypatch.setattr(PixelShuffleMLP, 'tokens_out', classmethod(lambda cls, settings, grid: 7))
    spec = data_spec_for_folder(folder)
    context = spec.tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>')
    encoded = spec.encode(ROW, spec.image_layouts(ROW, tmp_path))
    assert encoded.input_ids.count(context) == 21 == encoded.image_tokens
    dataset = ConversationDataset(tmp_path / 'data.jsonl', tmp_path, spec, cache_dir=tmp_path / 'cache',
                                  progress=False)
    assert dataset.lengths == [len(encoded)] != [len(baseline.encode(ROW, [3]))]
    assert '<IMG_CONTEXT>*21' in describe_sample(tmp_path / 'data.jsonl', tmp_path, spec)['prompt']
    assert inspect_folder(folder)['tiles']['tokens_per_tile'] == 7
    model = VisionLanguageModel(read_spec(folder))
    assert model.image_tokens.expand(model.prompt('<image>\nhi'), [3]).count('<IMG_CONTEXT>') == 21


CONVERSATIONS = [
    [{'role': 'user', 'content': 'What is in the image?'}],
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'},
     {'role': 'assistant', 'content': 'Hello!'}, {'role': 'user', 'content': 'Colour?'}],
    [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'What is it?'}]},
     {'role': 'assistant', 'content': 'A cat.'}],
]


def as_rows(messages):
    rows = []
    for m in messages:
        content = m['content'] if isinstance(m['content'], str) else ''.join(
            p['text'] if p['type'] == 'text' else '<image>\n' for p in m['content'])
        rows.append({'from': {'user': 'human', 'assistant': 'gpt'}.get(m['role'], m['role']), 'value': content})
    return rows


# hf_chat_template renders with a tokenizer's own chat_template (tests/test_llava_templates.py).
@pytest.mark.parametrize('name', [name for name in TEMPLATES.names() if name != 'hf_chat_template'])
@pytest.mark.parametrize('system', [None, 'You are a test.'])
def test_chat_template_is_generated_from_the_template(name, system):
    template = get_template(name)
    jinja = _compile_jinja_template(template.chat_template(system))
    for messages in CONVERSATIONS:
        for generation in (False, True):
            expected = template.render(as_rows(messages), system, generation)
            assert jinja.render(messages=messages, add_generation_prompt=generation) == expected


@pytest.mark.parametrize('name', [name for name in TEMPLATES.names() if get_template(name).image_tokens == INTERNVL_IMAGE])
def test_exported_conversation_py_renders_the_registry_strings(name):
    """The folder's conversation.py (the product) and the registry (the package) agree."""
    template, conv = get_template(name), get_conv_template(name)
    assert (conv.roles, conv.sep.strip(), conv.system_message) == (template.roles, template.end_token,
                                                                  template.system_message)
    for message in ('Q1', 'A1', 'Q2', None):
        conv.append_message(conv.roles[0] if message in ('Q1', 'Q2') else conv.roles[1], message)
    assert conv.get_prompt() == template.chat_prompt([('Q1', 'A1')], 'Q2')


def test_spec_overrides_and_errors(tiny_folder):
    spec = read_spec(tiny_folder('qwen2', '300m'))
    tuned = spec.override({'image_processor': {'max_tiles': 2}, 'template': {'system_message': 'Hi.'},
                           'llm': {'config': {'rope_theta': 500.0}}})
    assert tuned.image_processor['max_tiles'] == 2 and spec.image_processor['max_tiles'] == 6
    assert tuned.system_message == 'Hi.' and tuned.llm_config().rope_theta == 500.0
    assert tuned.llm_config().hidden_size == spec.llm_config().hidden_size  # config keys merge one by one
    merged = spec.override({'connector': {'type': 'pixel_shuffle_mlp', 'downsample_ratio': 0.25}})
    assert merged.connector == {'type': 'pixel_shuffle_mlp', 'downsample_ratio': 0.25, 'ps_version': 'v2'}
    replaced = spec.override({'connector': {'type': 'my_parts.Projector', 'width': 3}})  # another type: whole
    assert replaced.connector == {'type': 'my_parts.Projector', 'width': 3}
    with pytest.raises(SpecError, match="'projector': not a component"):
        spec.override({'projector': {}})
    with pytest.raises(KeyError, match="unknown connector 'nope'"):
        spec.override({'connector': {'type': 'nope'}}).component('connector')
    with pytest.raises(SpecError, match='llm needs pretrained'):
        build_model(spec={'vision_tower': {'type': 'intern_vit'}, 'llm': {'type': 'qwen2'},
                          'template': {'type': 'internvl2_5'}})


def test_from_parts_model(tiny_parts):
    """Tower and LLM weights are the folders' own; the image tokens are added to the LLM's tokenizer
    and its embedding rows grow with the mean of the old ones; the connector starts fresh."""
    from safetensors.torch import load_file
    model, tokenizer = build_model(spec=parts_spec(tiny_parts))
    tower = load_file(str(tiny_parts['vision_tower'] / 'model.safetensors'))
    assert all(torch.equal(model.vision_tower.state_dict()[k], v) for k, v in tower.items())
    llm = load_file(str(tiny_parts['llm'] / 'model.safetensors'))
    old_rows = llm['model.embed_tokens.weight'].shape[0]
    assert len(tokenizer) == old_rows + 9 == model.spec.llm_config().vocab_size
    assert tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>') >= old_rows
    for key in ('model.embed_tokens.weight', 'lm_head.weight'):
        grown = model.llm.state_dict()[key]
        assert torch.equal(grown[:old_rows], llm[key])
        torch.testing.assert_close(grown[old_rows:], llm[key].mean(0, keepdim=True).expand(9, -1))
    assert model.connector[1].weight.abs().sum() > 0


@pytest.mark.trainings
def test_from_parts_trains_converts_and_loads_in_remote_code(tiny_parts, tmp_path):
    """InternViT folder + Qwen2 folder + fresh connector -> `vlmtune train` (connector only) ->
    `vlmtune convert` -> an internvl folder that the exported remote code loads with the same logits."""
    data, images = make_colour_dataset(tmp_path, n=8)
    recipe = REPO / 'vlmtune' / 'recipes' / 'tiny' / 'parts_pretrain_cpu.py'
    options = [f'{where}.parts.{part}.pretrained={tiny_parts[part]}' for where in ('model', 'train_dataloader.dataset')
               for part in ('vision_tower', 'llm')]
    options += ['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2']
    train = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'train', str(recipe), '--work-dir', str(tmp_path / 'w'),
                            '--data', str(data), '--images', str(images), '--cfg-options', *options],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    out = tmp_path / 'internvl'
    convert = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'convert', str(recipe), str(tmp_path / 'w' / 'iter_2.pth'),
                              str(out), '--dtype', 'fp32', '--cfg-options', *options[:4]],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert convert.returncode == 0, convert.stderr[-3000:]
    assert 'self-check PASS' in convert.stdout and '(internvl layout)' in convert.stdout
    model, tokenizer = load(out)
    inputs = probe_inputs(tokenizer, model.num_image_token)
    ref_logits, ref_answers = package_outputs(model, tokenizer, inputs)
    probe = run_probe(out, inputs, tmp_path)
    assert not probe['vlmtune_imported']
    torch.testing.assert_close(probe['logits'].float(), ref_logits, atol=1e-4, rtol=0)
    assert probe['answers'] == ref_answers
    trained = torch.load(tmp_path / 'w' / 'iter_2.pth', map_location='cpu', weights_only=False)['state_dict']
    assert trained and all(k.startswith('model.connector.') for k in trained)  # only the connector trained
