"""The shipped MPO / DPO recipes carry the official MPO scripts' settings per family and size (training notes §5.8):
loss, beta, rpo_alpha, lr, max_length, drop path, 12 tiles, everything trained against a frozen copy; the LoRA
variant uses the disabled adapters as its reference; DPO is the sigmoid loss alone."""
import pytest

from vlmtune.engine.launch import load_recipe

OFFICIAL = {  # family: (lr, max_length, {size: drop path or None (the checkpoint's)})
    'internvl2_5': (1e-6, 8192, {s: None for s in ('1b', '2b', '4b', '8b', '26b')}),
    'internvl3': (2e-7, 12288, {s: 0.1 for s in ('1b', '2b', '8b', '14b')}),
    'internvl3_5': (2e-7, 16384, {'1b': 0.0, '2b': 0.0, '4b': 0.0, '8b': 0.1, '14b': 0.1, '30b_a3b': 0.1, '38b': 0.4}),
}
CASES = [(family, size, lr, length, drop) for family, (lr, length, sizes) in OFFICIAL.items()
         for size, drop in sizes.items()]


@pytest.mark.parametrize('family, size, lr, length, drop', CASES, ids=[f'{c[0]}_{c[1]}' for c in CASES])
def test_mpo_recipes_carry_the_official_settings(family, size, lr, length, drop):
    cfg = load_recipe(f'{family}_{size}_mpo')
    model, data = cfg.model, cfg.train_dataloader.dataset
    assert model.type.__name__ == 'PreferenceModel' and model.loss == dict(sigmoid=0.8, bco_pair=0.2)
    assert (model.beta, model.rpo_alpha, model.reference) == (0.1, 1.0, 'copy')
    assert (model.vision_tower, model.connector, model.llm) == ('full', 'full', 'full')
    assert (cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay) == (lr, 0.05)
    assert (data.max_length, data.max_tiles, data.pairs, cfg.train_dataloader.batch_size) == (length, 12, True, 1)
    assert cfg.train_cfg.max_epochs == 1 and cfg.param_scheduler[0].warmup_ratio == 0.03
    assert cfg.train_dataloader.sampler.type.__name__ == 'InfiniteSampler'   # official: no length grouping
    spec = model.get('spec') or {}
    assert spec.get('vision_tower', {}).get('config', {}).get('drop_path_rate') == drop and data.get('spec') == model.get('spec')
    lora = load_recipe(f'{family}_{size}_mpo_lora').model
    assert (lora.vision_tower, lora.connector, lora.llm, lora.reference) == ('frozen', 'frozen', 'lora', 'adapters')
    dpo = load_recipe(f'{family}_{size}_dpo').model
    assert dpo.loss == dict(sigmoid=1.0) and dpo.rpo_alpha is None


def test_llava_dpo_recipe():
    cfg = load_recipe('llava15_7b_dpo')
    assert cfg.model.type.__name__ == 'PreferenceModel' and cfg.model.loss == dict(sigmoid=1.0)
    assert (cfg.model.connector, cfg.model.llm, cfg.model.reference) == ('frozen', 'lora', 'adapters')
    assert cfg.train_dataloader.dataset.pairs and cfg.optim_wrapper.optimizer.lr == 5e-6
