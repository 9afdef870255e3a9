"""internvl_hf: official folders -> (vlmtune.formats.save, layout internvl_hf) -> transformers-native
InternVL folders, checked by transformers' own classes in side envs (4.57.6 and 5.24.0, one probe
subprocess per env, vlmtune hidden there), and back.

Measured preprocessing (448 px, images 800x600 ... 1344x1344, max tiles 12 and 6): tile counts and
grids of every GotOcr2 class equal `tile_image`; pixels of the PIL classes (4.57 slow
`GotOcr2ImageProcessor`, 5.24 `GotOcr2ImageProcessorPil`) are within 5e-7; the torch-resize classes
(4.57 `GotOcr2ImageProcessorFast`, 5.24's default torchvision backend) differ by up to 0.035 (two
uint8 levels) on random images. Those are asserted here with bounds.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoTokenizer

from helpers.owners import KNOWN_LIMITS, OWNERS
from helpers.probes import package_outputs, probe_inputs, REPO, run_probe
from vlmtune.side_envs import side_env
from vlmtune.data.templates import get_template
from vlmtune.data.tiling import TilingConfig, choose_grid, tile_image
from vlmtune.formats import CheckpointError, layout_of, load, save
from vlmtune.formats import internvl_hf as ivhf
from vlmtune.formats import internvl_hf_config as ivcfg
from vlmtune.formats.common import read_state_dict
from vlmtune.formats.internvl import held_llms
from vlmtune.formats.internvl_hf_processor import preprocessor_config, write_processor_files
from vlmtune.formats.internvl_remote.conversation import get_conv_template
from vlmtune.formats.internvl_remote.tokenization_internlm2 import InternLM2Tokenizer
from vlmtune.formats.tokenizers import INTERNVL_TOKENS
from vlmtune.tiny import CHATML_SPECIALS, CORPUS

pytestmark = pytest.mark.side_envs

ENVS = ('tf-4.57', 'tf-5.24')
# Every LLM family the official layout holds (hence -hf too); InternLM2 with the 6B-style ViT.
FAMILIES = {entry.family: '6b' if entry.key_map else '300m' for entry in held_llms()}
OWNER_ENV = OWNERS['internvl_hf'][0]  # the owner's limits (helpers/owners.py KNOWN_LIMITS) are this version's


def owner_runs(env, family) -> bool:
    return not (env == OWNER_ENV and ('internvl_hf', family) in KNOWN_LIMITS)
TOKENS_PER_TILE = 4  # tiny folders: 56 px tiles, 14 px patches, downsample 0.5
QUESTION = 'What is in the image?'
TEXTS = ['What is in the image? A cat.', '  two  spaces\nand a newline\n', '图中的菜是什么？请直接回答选项字母。',
         'emoji 😀 ü 1234567890', '<|im_start|>user\nHello<|im_end|>', '']
PIXEL_SIZES = [(800, 600), (300, 1000), (448, 448), (2000, 200), (2000, 1000), (896, 448), (1344, 1344)]
PIXEL_CASES = [((800, 600), 12), ((2000, 1000), 12), ((1344, 1344), 6), ((300, 1000), 6), ((800, 600), 1)]
TORCH_RESIZE_BOUND = 0.05  # measured 0.0350 (two uint8 levels / 0.224)


def write_hf(folder, out, **kwargs):
    """An official folder -> the internvl_hf layout, through the package (load, then save)."""
    model, tokenizer = load(folder)
    return save(model, tokenizer, out, layout='internvl_hf', dtype='fp32', **kwargs)


def official_tokenizer(folder):
    """The tokenizer the official code uses (model card: use_fast=False)."""
    if (folder / 'tokenizer.model').exists():
        return InternLM2Tokenizer.from_pretrained(str(folder))
    return AutoTokenizer.from_pretrained(str(folder), use_fast=False)


def official_prompt(config, turns):
    conv = get_conv_template(config['template'])
    if 'system_message' in config:
        conv.set_system_message(config['system_message'])
    for role, text in turns:
        conv.append_message(conv.roles[0 if role == 'user' else 1], text)
    return conv.get_prompt()


def rgb_image(path, width, height, seed=0):
    arr = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def sharpened_copy(folder, dest):
    """A copy whose ViT attention is peaked: random tiny ViTs attend almost uniformly, so a q/k mix-up
    would hardly move the logits. (Multiplying the fused qkv weight scales q.k by 64.)"""
    shutil.copytree(folder, dest)
    state = read_state_dict(dest)
    state = {k: v * 8 if k.endswith('attn.qkv.weight') else v for k, v in state.items()}
    save_file(state, str(dest / 'model.safetensors'), metadata={'format': 'pt'})
    return dest


def run_hf_probe(env, job, tmp_path):
    job_path, out_path = tmp_path / f'job-{env}.pt', tmp_path / f'out-{env}.pt'
    torch.save(job, job_path)
    environ = dict(os.environ, PYTHONPATH=str(side_env(env)), HF_HUB_OFFLINE='1')
    result = subprocess.run([sys.executable, str(REPO / 'tests' / 'probes' / 'hf_probe.py'), str(job_path), str(out_path)],
                            cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(out_path, weights_only=False)


@pytest.fixture(scope='session')
def cases(tiny_folder, tmp_path_factory):
    """Per family: the official folder, its -hf conversion, the official outputs and prompts."""
    root = tmp_path_factory.mktemp('internvl-hf')
    image = rgb_image(root / 'probe.png', 112, 56)
    out = {}
    specs = {name: dict(llm=name, vit=vit) for name, vit in FAMILIES.items()}
    specs['select_layer'] = dict(llm='qwen2', vit='300m', select_layer=-2, vit_layers=3)
    for name, spec in specs.items():
        folder = sharpened_copy(tiny_folder(**spec), root / f'official-{name}' / 'model')
        hf = write_hf(folder, root / f'hf-{name}')
        config = json.loads((folder / 'config.json').read_text())
        tokenizer = official_tokenizer(folder)
        inputs = probe_inputs(tokenizer, TOKENS_PER_TILE)
        probe_dir = root / f'official-{name}' / 'probe'
        probe_dir.mkdir()
        tiles = tile_image(Image.open(image), TilingConfig(image_size=56, max_num=config['max_dynamic_patch']))
        prompt = official_prompt(config, [('user', '<image>\n' + QUESTION), ('assistant', None)])
        expanded = prompt.replace('<image>', '<img>' + '<IMG_CONTEXT>' * TOKENS_PER_TILE * len(tiles) + '</img>')
        package_logits, package_answers = package_outputs(*load(folder), inputs)
        out[name] = dict(folder=folder, hf=hf, config=config, inputs=inputs, tiles=tiles,
                         official=run_probe(folder, inputs, probe_dir), image_prompt=prompt,
                         package={'logits': package_logits, 'answers': package_answers},
                         image_ids=tokenizer(expanded).input_ids,
                         text_ids={t: tokenizer(t).input_ids for t in TEXTS}, n_tokens=len(tokenizer),
                         chat_prompt=official_prompt(config, [('user', '<image>\nWhat is in the image?'),
                                                              ('assistant', 'A cat.'), ('user', 'What color is it?'),
                                                              ('assistant', None)]))
    return out


@pytest.fixture(scope='session')
def prefix_tokenizer(tmp_path_factory):
    """An InternLM2-style SentencePiece tokenizer with a dummy prefix (the tiny folders have none):
    -> (-hf folder with only processor files, official ids of TEXTS + a chat prompt)."""
    import sentencepiece as spm
    root = tmp_path_factory.mktemp('sp-prefix')
    official, hf = root / 'official', root / 'hf'
    official.mkdir()
    hf.mkdir()
    with open(official / 'tokenizer.model', 'wb') as handle:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(CORPUS * 4), model_writer=handle, vocab_size=1200, model_type='bpe',
            byte_fallback=True, character_coverage=1.0, user_defined_symbols=CHATML_SPECIALS, unk_id=0, bos_id=1,
            eos_id=2, pad_id=-1, hard_vocab_limit=False, normalization_rule_name='identity', add_dummy_prefix=True,
            remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, minloglevel=2)
    tokenizer = InternLM2Tokenizer(vocab_file=str(official / 'tokenizer.model'))
    tokenizer.add_special_tokens({'additional_special_tokens': CHATML_SPECIALS})
    tokenizer.add_tokens(INTERNVL_TOKENS, special_tokens=True)
    tokenizer.save_pretrained(str(official))
    config = {'template': 'internlm2-chat', 'vision_config': {'image_size': 448, 'patch_size': 14},
              'dynamic_image_size': True, 'use_thumbnail': True, 'llm_config': {'eos_token_id': 2}}
    template = get_template('internlm2-chat')
    write_processor_files(official, config, hf, template.processor_chat_template(), template.end_token, 256)
    (hf / 'config.json').write_text(json.dumps({'model_type': 'internvl', 'architectures': [ivcfg.HF_ARCH]}))
    texts = TEXTS + [official_prompt(config, [('user', ' What is in the image? '), ('assistant', None)])]
    return hf, {t: tokenizer(t).input_ids for t in texts}


@pytest.fixture(scope='session')
def pixel_job(tmp_path_factory):
    root = tmp_path_factory.mktemp('hf-pixels')
    (root / 'preprocessor_config.json').write_text(json.dumps(preprocessor_config(
        {'force_image_size': 448, 'vision_config': {'image_size': 448}, 'dynamic_image_size': True,
         'min_dynamic_patch': 1, 'max_dynamic_patch': 12})))
    cases = []
    for i, ((width, height), max_num) in enumerate(PIXEL_CASES):
        path = rgb_image(root / f'{i}-{width}x{height}.png', width, height, seed=i)
        cfg = TilingConfig(image_size=448, min_num=1, max_num=max_num, use_thumbnail=True, dynamic=max_num > 1)
        cases.append({'image': str(path), 'max_num': max_num, 'reference': tile_image(Image.open(path), cfg)})
    grid_cases = [(w, h, n) for w, h in PIXEL_SIZES for n in (12, 6)]
    return {'pixel_folder': str(root), 'pixel_cases': cases, 'grid_cases': grid_cases}


@pytest.fixture(scope='session')
def hf_results(cases, pixel_job, prefix_tokenizer, tmp_path_factory):
    """One probe subprocess per env over every folder; 5.24 also loads what 4.57 saved."""
    root = tmp_path_factory.mktemp('hf-probe')
    results = {}
    for env in ENVS:
        runs = []
        for name, case in cases.items():
            sep = get_conv_template(case['config']['template']).sep.strip()
            run = dict(folder=str(case['hf']), inputs=case['inputs'], sep=sep, texts=TEXTS + ['<video>'],
                       image=str(case['hf'].parent / 'probe.png'), question=QUESTION)
            if name in FAMILIES and owner_runs(env, name):
                run['save_to'] = str(root / f'saved-{env}-{name}')
            if env == 'tf-5.24' and name in FAMILIES and owner_runs('tf-4.57', name):
                run['also_load'] = str(root / f'saved-tf-4.57-{name}')
            runs.append(run)
        runs.append(dict(folder=str(prefix_tokenizer[0]), texts=list(prefix_tokenizer[1])))
        results[env] = run_hf_probe(env, {'runs': runs, **pixel_job}, root)
        results[env]['by_name'] = dict(zip([*cases, 'prefix_tokenizer'], results[env]['runs']))
        results[env]['root'] = root
    return results


@pytest.mark.parametrize('family', sorted(FAMILIES))
@pytest.mark.parametrize('env', ENVS)
def test_logits_and_generate_equal_remote_code(cases, hf_results, env, family):
    result, case = hf_results[env]['by_name'][family], cases[family]
    assert not hf_results[env]['vlmtune_imported']
    if not owner_runs(env, family):
        assert KNOWN_LIMITS['internvl_hf', family] in result['error']
        return
    assert result['processor_classes'][0] == 'InternVLProcessor'
    diff = (result['logits'] - case['official']['logits']).abs().max().item()
    package = (result['logits'] - case['package']['logits']).abs().max().item()
    print(f'{env} {family}: max |logits - remote code| = {diff:.3g}, max |logits - vlmtune| = {package:.3g}')
    assert diff < 1e-4 and package < 1e-4, (env, family, diff, package)
    assert result['answers'] == case['official']['answers'] == case['package']['answers']
    assert all(a for a in result['answers'])  # six greedy tokens each: something to compare


@pytest.mark.parametrize('family', sorted(FAMILIES))
@pytest.mark.parametrize('env', ENVS)
def test_processor_prompt_ids_and_pixels(cases, hf_results, env, family):
    result, case = hf_results[env]['by_name'][family], cases[family]
    if owner_runs(env, family):  # the probe renders the chat template after the model ran; the rest needs no model
        assert result['chat_template_prompt'] == case['chat_prompt'].replace('<image>', '<IMG_CONTEXT>')
    assert result['image_prompt'] == case['image_prompt'].replace('<image>', '<IMG_CONTEXT>')
    assert result['image_input_ids'] == case['image_ids']
    assert result['chat_template_input_ids'] == case['image_ids']  # apply_chat_template(tokenize=True)
    ids = result['tokenizer_ids']
    assert {t: ids[t] for t in TEXTS} == case['text_ids']
    # documented difference: the processor's named `<video>` is a special token after the official ones
    assert ids['<video>'] == case['text_ids'][''] + [case['n_tokens']]  # ('' -> just the BOS, if any)
    pil = result.get('image_pixel_values_pil', result['image_pixel_values'])  # 4.57's default is PIL
    assert pil.shape == case['tiles'].shape == (3, 3, 56, 56)
    assert (pil - case['tiles']).abs().max().item() < 1e-5
    assert (result['image_pixel_values'] - case['tiles']).abs().max().item() < TORCH_RESIZE_BOUND


@pytest.mark.parametrize('env', ENVS)
def test_preprocessing_parity_at_448(hf_results, pixel_job, env):
    pixels = hf_results[env]['pixels']
    pil_name, torch_name = ('pil', 'torchvision') if env == 'tf-5.24' else ('slow', 'fast')
    assert pixels[pil_name]['class'] in ('GotOcr2ImageProcessorPil', 'GotOcr2ImageProcessor')
    for name in (pil_name, torch_name):
        for (w, h, n), row in zip(pixel_job['grid_cases'], pixels[name]['grids']):
            cols, rows = choose_grid(w, h, 1, n, 448)
            assert row['grid'] == (cols, rows), (name, w, h, n)
            assert row['tiles'] == cols * rows + (cols * rows > 1), (name, w, h, n)
        for case, row in zip(pixel_job['pixel_cases'], pixels[name]['rows']):
            print(f"{env} {pixels[name]['class']}: {row['size']} max {row['max_num']}: {row['tiles']} tiles, "
                  f"max |diff| {row['max_abs_diff']:.3g}")
            assert row['tiles'] == case['reference'].shape[0], (name, row)
            assert row['max_abs_diff'] < (1e-5 if name == pil_name else TORCH_RESIZE_BOUND), (name, row)


def test_keys_written_by_transformers_read_back(cases, hf_results):
    """4.57 saves the older key names, 5.24 the ones we write; both invert to the official state,
    and 5.24 loads 4.57's save with the same logits."""
    for family in FAMILIES:
        official = read_state_dict(cases[family]['folder'])
        for env in [env for env in ENVS if owner_runs(env, family)]:
            saved = hf_results[env]['root'] / f'saved-{env}-{family}'
            keys = hf_results[env]['by_name'][family]['saved_keys']
            assert any(k.startswith('language_model.model.') for k in keys) == (env == 'tf-4.57'), keys[:3]
            hf = json.loads((saved / 'config.json').read_text())
            back = ivhf.state_from_hf(read_state_dict(saved), hf)
            assert back.keys() == official.keys()
            assert all(torch.equal(back[k], official[k]) for k in official)
            ours = ivcfg.official_config(json.loads((cases[family]['hf'] / 'config.json').read_text()))
            again = ivcfg.official_config(hf)  # newer versions may add fields (4.57: phi3 partial_rotary_factor)
            assert {k: v for k, v in again.items() if k != 'llm_config'} == \
                {k: v for k, v in ours.items() if k != 'llm_config'}, (env, family)
            assert {k: again['llm_config'].get(k) for k in ours['llm_config']} == ours['llm_config'], (env, family)
        result = hf_results['tf-5.24']['by_name'][family]
        if owner_runs('tf-4.57', family):
            assert torch.equal(result['also_load_logits'], result['logits'])


@pytest.mark.parametrize('env', ENVS)
def test_sentencepiece_dummy_prefix_tokenizer(prefix_tokenizer, hf_results, env):
    result = hf_results[env]['by_name']['prefix_tokenizer']
    assert result['processor_classes'][2] in ('PreTrainedTokenizerFast', 'TokenizersBackend')
    assert result['tokenizer_ids'] == prefix_tokenizer[1]


def test_select_layer_runs_in_5x_only(cases, hf_results):
    case = cases['select_layer']
    assert 'vision_model' in hf_results['tf-4.57']['by_name']['select_layer']['error']
    result = hf_results['tf-5.24']['by_name']['select_layer']
    assert (result['logits'] - case['official']['logits']).abs().max().item() < 1e-4
    assert result['answers'] == case['official']['answers']


VISION_FIELDS = ('architectures', 'model_type', 'num_channels', 'patch_size', 'image_size', 'qkv_bias', 'hidden_size',
                 'num_attention_heads', 'intermediate_size', 'qk_normalization', 'num_hidden_layers', 'use_flash_attn',
                 'hidden_act', 'norm_type', 'layer_norm_eps', 'dropout', 'drop_path_rate', 'attention_dropout',
                 'initializer_range', 'initializer_factor', 'torch_dtype')


def _assert_same_official(back, original):
    """Every official field equal: top level and LLM (all but PretrainedConfig bookkeeping), vision
    (every InternVisionConfig field)."""
    for key in set(back) | set(original):
        if key in ivcfg.GENERIC_KEYS or key in ('vision_config', 'llm_config'):
            continue
        assert back.get(key) == original.get(key), key
    assert back.get('torch_dtype') == original.get('torch_dtype')
    for key in VISION_FIELDS:
        assert back['vision_config'][key] == original['vision_config'][key], key
    a, b = ivcfg._clean(back['llm_config']), ivcfg._clean(original['llm_config'])
    assert a == b, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert back['llm_config'].get('torch_dtype') == original['llm_config'].get('torch_dtype')
    if 'auto_map' in original['llm_config']:
        assert back['llm_config']['auto_map'] == original['llm_config']['auto_map']


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_roundtrip_is_exact(tiny_folder, tmp_path, family):
    """internvl -> internvl_hf -> internvl writes the same files, byte for byte, as saving the internvl
    folder again directly; the package loads the -hf folder with the same weights and logits."""
    folder = tiny_folder(llm=family, vit='6b' if family == 'internlm2' else '300m')
    model, tokenizer = load(folder)
    direct = save(model, tokenizer, tmp_path / 'direct', dtype='fp32')
    hf = write_hf(folder, tmp_path / 'hf')
    assert layout_of(hf) == 'internvl_hf' and not (hf / 'modeling_internvl_chat.py').exists()
    via_hf, hf_tokenizer = load(hf)
    assert via_hf.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(via_hf.state_dict()[k], v) for k, v in model.state_dict().items())
    back = save(via_hf, hf_tokenizer, tmp_path / 'back', layout='internvl', dtype='fp32')
    files = sorted(p.name for p in direct.iterdir())
    assert files == sorted(p.name for p in back.iterdir())
    assert [name for name in files if (direct / name).read_bytes() != (back / name).read_bytes()] == []
    # bf16 tensors and non-default official settings survive the pure maps too
    original = read_state_dict(folder)
    official = json.loads((folder / 'config.json').read_text())
    official.update(system_message='Be brief.', min_dynamic_patch=2, max_dynamic_patch=9, dynamic_image_size=False,
                    torch_dtype='bfloat16')
    for part in ('vision_config', 'llm_config'):
        official[part] = {**official[part], 'torch_dtype': 'bfloat16'}
    bf16 = {k: v.to(torch.bfloat16) for k, v in original.items()}
    cfg = ivcfg.hf_config(official, image_token_id=7, tokens_per_tile=4)
    back_state = ivhf.state_from_hf(ivhf.state_to_hf(bf16, official), cfg)
    assert all(back_state[k].dtype == torch.bfloat16 and torch.equal(back_state[k], bf16[k]) for k in bf16)
    _assert_same_official(ivcfg.official_config(json.loads(json.dumps(cfg))), official)


def test_hub_style_folder_without_own_record(tiny_folder, tmp_path):
    """A -hf folder without the "vlmtune" record inverts by convention (template, tiling from files)."""
    folder = tiny_folder(llm='qwen2', vit='300m')
    hf = write_hf(folder, tmp_path / 'hf')
    cfg = json.loads((hf / 'config.json').read_text())
    cfg.pop(ivhf.OWN_KEY)
    pre = json.loads((hf / 'preprocessor_config.json').read_text())
    back = ivcfg.official_config(cfg, pre)
    original = json.loads((folder / 'config.json').read_text())
    for key in ('template', 'force_image_size', 'dynamic_image_size', 'use_thumbnail', 'min_dynamic_patch',
                'max_dynamic_patch', 'select_layer', 'downsample_ratio', 'ps_version'):
        assert back[key] == original[key], key


def test_what_hf_cannot_hold_is_refused(tiny_folder, tmp_path):
    folder = tiny_folder(llm='qwen2', vit='300m')
    official = json.loads((folder / 'config.json').read_text())
    bad = {
        'v2 only': dict(ps_version='v1'),
        'always appends the thumbnail': dict(use_thumbnail=False),
        'pad2square': dict(pad2square=True),
        'merge the LoRA': dict(use_llm_lora=8),
    }
    for message, change in bad.items():
        with pytest.raises(ValueError, match=message):
            ivcfg.hf_config({**official, **change}, image_token_id=7, tokens_per_tile=4)
    with pytest.raises(ValueError, match='Qwen2ForCausalLM'):  # the error names what is supported
        ivcfg.hf_config({**official, 'llm_config': {**official['llm_config'], 'architectures': ['GemmaForCausalLM']}}, 7, 4)
    with pytest.raises(ValueError, match='eps'):
        ivcfg.hf_config({**official, 'vision_config': {**official['vision_config'], 'qk_normalization': True,
                                                       'layer_norm_eps': 1e-5}}, 7, 4)
    with pytest.raises(ValueError, match='unknown official key'):
        ivhf.state_to_hf({'vision_model.encoder.layers.0.attn.extra': torch.zeros(1)}, official)
    cfg = ivcfg.hf_config(official, 7, 4)
    with pytest.raises(ValueError, match='final LayerNorm'):
        ivcfg.official_config({**cfg, 'vision_config': {**cfg['vision_config'], 'use_mean_pooling': False}})
    with pytest.raises(ValueError, match='default'):
        ivcfg.official_config({**cfg, 'vision_feature_select_strategy': 'full'})
    with pytest.raises(ValueError, match='no official InternVL LLM'):
        ivcfg.official_config({**cfg, 'text_config': {**cfg['text_config'], 'model_type': 'gemma'}})
    # A refused folder leaves nothing behind; an existing target is not replaced unless asked.
    (tmp_path / 'v1').mkdir()
    for name in folder.iterdir():
        (tmp_path / 'v1' / name.name).write_bytes(name.read_bytes())
    (tmp_path / 'v1' / 'config.json').write_text(json.dumps({**official, 'ps_version': 'v1'}))
    with pytest.raises(CheckpointError, match='v2 only'):
        write_hf(tmp_path / 'v1', tmp_path / 'out' / 'hf')
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())
    write_hf(folder, tmp_path / 'out' / 'hf')
    with pytest.raises(FileExistsError):
        write_hf(folder, tmp_path / 'out' / 'hf')
    write_hf(folder, tmp_path / 'out' / 'hf', overwrite=True)
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['hf']


def test_sharded_hf_folder_loads_identically(tiny_folder, tmp_path):
    folder = tiny_folder(llm='qwen2', vit='300m')
    model, tokenizer = load(folder)
    hf = save(model, tokenizer, tmp_path / 'hf', layout='internvl_hf', dtype='fp32', max_shard_size_gb=200e3 / 1024 ** 3)
    index = json.loads((hf / 'model.safetensors.index.json').read_text())
    assert len(set(index['weight_map'].values())) > 1
    assert all(k.startswith(('model.', 'lm_head.')) for k in index['weight_map'])  # -hf names
    reloaded, _ = load(hf)
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in model.state_dict().items())
