"""Every recipe under recipes/ parses and builds its model and dataset from a tiny stand-in
checkpoint of the same LLM family (via cfg-options), so no recipe can rot."""
import re
from pathlib import Path

import pytest
from mmengine.registry import MODELS

from conftest import REPO
from train_data import make_colour_dataset
from vlmtune.engine.launch import load_recipe, shortcut_options

RECIPES = sorted(p for p in (REPO / 'vlmtune' / 'recipes').rglob('*.py') if '_base_' not in p.parts)
FAMILY_BY_SIZE = {
    'internvl2': {'1b': ('qwen2', '300m'), '2b': ('internlm2', '300m'), '4b': ('phi3', '300m'),
                  '8b': ('internlm2', '300m'), '26b': ('internlm2', '6b')},
    'internvl2_5': {'1b': ('qwen2', '300m'), '2b': ('internlm2', '300m'), '4b': ('qwen2', '300m'),
                    '8b': ('internlm2', '300m'), '26b': ('internlm2', '6b')},
    'internvl3': {size: ('qwen2', '300m') for size in ('1b', '2b', '8b', '14b')},
}


def stand_in_family(recipe: Path):
    match = re.match(r'(internvl2_5|internvl2|internvl3)_(\d+b)_', recipe.name)
    if match:
        return FAMILY_BY_SIZE[match.group(1)][match.group(2)]
    return ('internlm2', '300m')  # domain (InternVL2-2B) and tiny recipes


def test_recipe_set_is_complete():
    names = {p.name for p in RECIPES}
    for family, sizes in FAMILY_BY_SIZE.items():
        for size in sizes:
            for method in ('full', 'lora', 'qlora'):
                assert f'{family}_{size}_{method}.py' in names
    assert 'internvl2_2b_lora_food.py' in names
    domain = REPO / 'vlmtune' / 'recipes' / 'domain' / 'internvl2_2b_lora_food.py'
    assert len(domain.read_text().splitlines()) <= 40


def parts_options(parts):
    return [f'{where}.spec.{part}.pretrained={parts[part]}' for where in ('model', 'train_dataloader.dataset')
            for part in ('vision_tower', 'llm')]


@pytest.mark.parametrize('recipe', RECIPES, ids=lambda p: str(p.relative_to(REPO / 'vlmtune' / 'recipes')))
def test_recipe_builds_from_stand_in(recipe, tiny_folder, tiny_parts, tmp_path_factory):
    folder = tiny_folder(*stand_in_family(recipe))
    data, images = make_colour_dataset(tmp_path_factory.mktemp('data'), n=2)
    from_parts = recipe.stem.startswith('parts_')  # built from a vision-tower folder + an LLM folder
    options = shortcut_options(None if from_parts else folder, data, images)
    cfg = load_recipe(recipe, options + (parts_options(tiny_parts) if from_parts else []))
    if from_parts:
        assert cfg.model.checkpoint is None and cfg.model.spec.llm.pretrained == str(tiny_parts['llm'])
    else:
        assert cfg.model.checkpoint == str(folder) == cfg.train_dataloader.dataset.checkpoint
    model_cfg = dict(cfg.model)
    if recipe.stem.endswith('qlora'):
        assert model_cfg['quantization'] == 'nf4' and model_cfg['llm'] == 'lora'
        model_cfg['quantization'] = None  # 4-bit needs a GPU; the rest of the recipe is built here
    model_cfg['dtype'] = 'fp32'
    model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    dataset_cfg = dict(cfg.train_dataloader.dataset)
    dataset = dataset_cfg.pop('type')(**dataset_cfg)
    assert len(dataset) == 2
    assert cfg.train_cfg.get('max_epochs') or cfg.train_cfg.get('max_iters')
    if 'lora' in recipe.stem and 'tiny' not in str(recipe):
        assert model_cfg['lora'] == dict(r=16, alpha=32, dropout=0.05) and cfg.optim_wrapper.optimizer.lr == 4e-5
