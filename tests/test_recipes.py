"""Every recipe under recipes/ parses and builds its model and dataset from a tiny stand-in
checkpoint of the same LLM family, or tiny parts of the same kinds (via cfg-options), so no recipe
can rot."""
import json
import re
from pathlib import Path

import pytest
from mmengine.registry import MODELS

from helpers.probes import REPO
from helpers.training_data import make_colour_dataset
from vlmtune.engine.launch import MODEL_SOURCES, load_recipe, shortcut_options
from vlmtune.formats import save
from vlmtune.tiny import TinyLlavaSpec, TinySpec, compose_tiny, make_tiny_llava_parts, make_tiny_parts

RECIPES = sorted(p for p in (REPO / 'vlmtune' / 'recipes').rglob('*.py') if '_base_' not in p.parts)
FAMILY_BY_SIZE = {
    'internvl2': {'1b': ('qwen2', '300m'), '2b': ('internlm2', '300m'), '4b': ('phi3', '300m'),
                  '8b': ('internlm2', '300m'), '26b': ('internlm2', '6b')},
    'internvl2_5': {'1b': ('qwen2', '300m'), '2b': ('internlm2', '300m'), '4b': ('qwen2', '300m'),
                    '8b': ('internlm2', '300m'), '26b': ('internlm2', '6b')},
    'internvl3': {size: ('qwen2', '300m') for size in ('1b', '2b', '8b', '14b')},
    'internvl3_5': {**{size: ('qwen3', '300m') for size in ('1b', '2b', '4b', '8b', '14b')}, '38b': ('qwen3', '6b'),
                    '30b_a3b': ('qwen3_moe', '300m')},
}


def stand_in_family(recipe: Path):
    match = re.match(r'(internvl2_5|internvl2|internvl3_5|internvl3)_(\d+b(?:_a\d+b)?)_', recipe.name)
    if match:
        return FAMILY_BY_SIZE[match.group(1)][match.group(2)]
    return ('internlm2', '300m')  # domain (InternVL2-2B) and tiny recipes


LLAVA_SIZES = ('7b', '13b')
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope='session')
def llava_parts(tmp_path_factory):
    """(tower, image size) -> tiny tower + Llama parts (336 / 384: the released recipes' sizes; 56: the tiny ones')."""
    return {(tower, size): make_tiny_llava_parts(tmp_path_factory.mktemp(f'{tower}-{size}'),
                                                 spec=TinyLlavaSpec(tower=tower, image_size=size))
            for tower, size in (('clip', 336), ('clip', 56), ('siglip', 384))}


def test_recipe_set_is_complete():
    names = {p.name for p in RECIPES}
    for family, sizes in FAMILY_BY_SIZE.items():
        for size in sizes:
            for method in ('full', 'lora', 'qlora'):
                assert f'{family}_{size}_{method}.py' in names
    assert 'internvl2_2b_lora_food.py' in names
    for family in ('qwen2', 'llama', 'qwen3'):
        assert {f'moe_llava_{family}_{stage}.py' for stage in ('pretrain', 'finetune', 'moe')} <= names
    assert {'internvl_moe.py', 'moe_cpu.py'} <= names
    assert {f'tinyllava_qwen2_{stage}.py' for stage in ('pretrain', 'finetune', 'finetune_partial', 'lora')} <= names
    for size in LLAVA_SIZES:
        assert {f'llava15_{size}_{m}.py' for m in ('pretrain', 'finetune', 'lora')} <= names
        assert {f'llava_next_{size}_{m}.py' for m in ('finetune', 'lora')} <= names
    # every family has a domain LoRA on a whole released checkpoint; BLIP-2 and TinyLLaVA's query connectors
    assert {f'{m}_lora_food.py' for m in ('internvl2_2b', 'llava15_7b', 'llava_next_7b', 'blip2_opt_2_7b',
                                          'tinyllava_qwen2')} <= names
    assert {'blip2_opt_2_7b_instruct.py', 'tinyllava_qwen2_qformer_pretrain.py',
            'tinyllava_qwen2_resampler_pretrain.py'} <= names
    for domain in (REPO / 'vlmtune' / 'recipes' / 'domain').glob('*.py'):
        assert len(domain.read_text().splitlines()) <= 40
        assert load_recipe(domain).model.checkpoint and not load_recipe(domain).model.get('parts'), domain.name


def colour_pairs(data):
    """The colour rows as preference pairs: the right colour chosen, another rejected."""
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    pairs = [{'image': r['image'], 'question': 'What colour is it?', 'chosen': r['conversations'][1]['value'],
              'rejected': 'purple'} for r in rows]
    out = data.with_name('pairs.jsonl')
    out.write_text(''.join(json.dumps(p) + '\n' for p in pairs))
    return out


def parts_options(parts):
    return [f'{where}.parts.{part}.pretrained={parts[part]}' for where in ('model', 'train_dataloader.dataset')
            for part in ('vision_tower', 'llm')]


# A whole-checkpoint recipe of another family gets a tiny folder of its layout (parts as in REFERENCES of
# test_contracts): (tower, connector, processor, template) for compose_tiny.
STAND_INS = {'llava_hf': ('clip', 'mlp2x_gelu', ('pad', {}), 'vicuna_v1'),
             'llava_next_hf': ('clip', 'mlp2x_gelu', ('anyres', {}), 'vicuna_v1'),
             'blip2_hf': ('blip2_vision', 'qformer', ('square', {'crop': False}), 'blip2'),
             'composite': ('siglip', 'mlp2x_gelu', ('square', {'crop': False}), 'vicuna_v1')}


def stand_in_folder(recipe, tiny_folder, root):
    layouts = load_recipe(recipe).get('checkpoint_layouts') or ('internvl',)
    if layouts[0] not in STAND_INS:
        return tiny_folder(*stand_in_family(recipe))
    tower, connector, processor, template = STAND_INS[layouts[0]]
    model, tokenizer = compose_tiny(tower, connector, 'qwen2', processor, template)
    return save(model, tokenizer, root / layouts[0], layout=layouts[0], dtype='fp32')


@pytest.mark.parametrize('recipe', RECIPES, ids=lambda p: str(p.relative_to(REPO / 'vlmtune' / 'recipes')))
def test_recipe_builds_from_stand_in(recipe, tiny_folder, tiny_parts, llava_parts, tmp_path_factory):
    folder = stand_in_folder(recipe, tiny_folder, tmp_path_factory.mktemp('stand-in'))
    data, images = make_colour_dataset(tmp_path_factory.mktemp('data'), n=2)
    if load_recipe(recipe).train_dataloader.dataset.get('pairs'):  # a preference recipe reads pairs
        data = colour_pairs(data)
    spec = load_recipe(recipe).model.get('parts') or {}
    from_parts = 'pretrained' in spec.get('llm', {})  # built from a vision-tower folder + an LLM folder
    if from_parts and spec['vision_tower']['type'] in ('clip', 'siglip'):  # tiny tower + an LLM of the recipe's family
        parts = dict(llava_parts[(spec['vision_tower']['type'], spec['image_processor']['image_size'])])
        if spec['llm']['type'] != 'llama':
            parts['llm'] = make_tiny_parts(tmp_path_factory.mktemp('llm'), TinySpec(llm=spec['llm']['type']))['llm']
        extra = [f'{where}.parts.connector.pretrained=None' for where in MODEL_SOURCES]  # no stage-1 run here
    else:
        parts, extra = tiny_parts, []
    options = shortcut_options(None if from_parts else folder, data, images)
    cfg = load_recipe(recipe, options + (parts_options(parts) + extra if from_parts else []))
    if from_parts and spec.get('template', {}).get('type') == 'hf_chat_template':  # tiny tokenizers have none
        for where in (cfg.model.parts, cfg.train_dataloader.dataset.parts):
            where.template['chat_template'] = CHATML
    if from_parts:
        assert cfg.model.checkpoint is None and cfg.model.parts.llm.pretrained == str(parts['llm'])
    else:
        assert cfg.model.checkpoint == str(folder) == cfg.train_dataloader.dataset.checkpoint
    model_cfg = dict(cfg.model)
    if recipe.stem.endswith('qlora'):
        assert model_cfg['quantization'] == 'nf4' and model_cfg['llm'] == 'lora'
        model_cfg['quantization'] = None  # 4-bit needs a GPU; the rest of the recipe is built here
    model_cfg['dtype'] = 'fp32'
    if str(model_cfg['vision_tower']).startswith('partial:'):  # the tiny tower has 3 blocks: train its last one
        assert model_cfg['vision_tower'] == 'partial:10'  # TinyLLaVA's tune_vision_tower_from_layer default
        model_cfg['vision_tower'] = 'partial:2'
    model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    dataset_cfg = dict(cfg.train_dataloader.dataset)
    dataset = dataset_cfg.pop('type')(**dataset_cfg)
    assert len(dataset) == 2
    assert cfg.train_cfg.get('max_epochs') or cfg.train_cfg.get('max_iters')
    if 'lora' in recipe.stem and recipe.stem.startswith('internvl') and 'mpo' not in recipe.stem:
        assert model_cfg['lora'] == dict(r=16, alpha=32, dropout=0.05) and cfg.optim_wrapper.optimizer.lr == 4e-5
    if recipe.stem.endswith('moe') or recipe.stem == 'moe_cpu':  # MoE-LLaVA's stage 3 (finetune_moe.sh)
        assert model_cfg['llm'] == 'moe' and model_cfg['vision_tower'] == model_cfg['connector'] == 'frozen'
        assert cfg.model.spec.llm.moe == dict(mode='sparse', num_experts=4, top_k=2, capacity_factor=1.5,
                                              router_aux_loss_coef=0.01)
        assert cfg.model.spec == cfg.train_dataloader.dataset.spec
        assert any(h['type'].__name__ == 'ExpertLoadHook' for h in cfg.custom_hooks)
        assert sum(p.numel() for n, p in model.named_parameters() if '.experts.' in n) > 0
    if recipe.parent.name == 'tinyllava':  # TinyLLaVA Factory's tune types as per-part modes
        stage = recipe.stem[len('tinyllava_qwen2_'):]
        lr, trains = {'pretrain': (1e-3, ('frozen', 'full', 'frozen')), 'finetune': (2e-5, ('frozen', 'full', 'full')),
                      'qformer_pretrain': (1e-3, ('frozen', 'full', 'frozen')),
                      'resampler_pretrain': (1e-3, ('frozen', 'full', 'frozen')),
                      'finetune_partial': (2e-5, ('partial:10', 'full', 'full')),
                      'lora': (2e-4, ('frozen', 'full', 'lora'))}[stage]
        assert cfg.optim_wrapper.optimizer.lr == lr
        assert (load_recipe(recipe).model.vision_tower, model_cfg['connector'], model_cfg['llm']) == trains
        assert cfg.model.parts.vision_tower['select_feature'] == 'drop_first'  # TinyLLaVA's `patch` on SigLIP
        connector = stage.split('_')[0] if stage.endswith('former_pretrain') or stage.startswith('resampler') else None
        if connector:  # TinyLLaVA's qformer / resampler: 128 queries (num_queries' default there)
            assert cfg.model.parts.connector['type'] == connector and model.model.num_image_token == 128
    if recipe.parent.name in ('llava', 'llava_next'):  # LLaVA-1.5's hyper-parameters (scripts/v1_5, 8 GPUs)
        stage = recipe.stem.rsplit('_', 1)[1]
        lr, batch, trains = {'pretrain': (1e-3, 32, ('frozen', 'full', 'frozen')),
                             'finetune': (2e-5, 16, ('frozen', 'full', 'full')),
                             'lora': (2e-4, 16, ('frozen', 'full', 'lora'))}[stage]
        assert (cfg.optim_wrapper.optimizer.lr, cfg.train_dataloader.batch_size) == (lr, batch)
        assert (model_cfg['vision_tower'], model_cfg['connector'], model_cfg['llm']) == trains
        assert cfg.model.parts.template['type'] == ('plain' if stage == 'pretrain' else 'vicuna_v1')
        if stage == 'lora':
            assert model_cfg['lora'] == dict(r=128, alpha=256, dropout=0.05)
            assert cfg.optim_wrapper.paramwise_cfg.custom_keys.connector.lr_mult == 0.1  # connector 2e-5
