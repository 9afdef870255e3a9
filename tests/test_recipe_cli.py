"""Recipes by name (`vlmtune list-cfg`, `copy-cfg`, `train NAME`), copies that run from anywhere, and
two `vlmtune train` runs started at the same moment on one machine (each gets its own port)."""
import os
import re
import subprocess
import sys
import time

import pytest
from mmengine.config import Config

from helpers.probes import REPO
from vlmtune.cli import main as cli_main
from vlmtune.engine import launch

PACKAGE_RECIPES = REPO / 'vlmtune' / 'recipes'
SHIPPED = sorted(p for p in PACKAGE_RECIPES.rglob('*.py') if '_base_' not in p.parts)
TWO_ITERS = ['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2']
RENDEZVOUS = ('MASTER_PORT', 'MASTER_ADDR', 'PORT', 'RANK', 'LOCAL_RANK', 'WORLD_SIZE')


def child_env():
    """The test process's environment without rendezvous settings, so that each run picks its own."""
    env = {k: v for k, v in os.environ.items() if k not in RENDEZVOUS}
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    return env


def train_cmd(ws, recipe, *extra):
    return [sys.executable, '-m', 'vlmtune.cli', 'train', str(recipe), '--checkpoint', str(ws['folder']),
            '--data', str(ws['data']), '--images', str(ws['images']), *extra]


def error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    return err


def test_list_cfg_shows_every_shipped_recipe_with_its_first_comment(capsys):
    assert cli_main(['list-cfg']) == 0
    out = capsys.readouterr().out
    listed = re.findall(r'^  (\S+)', out, re.M)
    assert sorted(listed) == sorted(p.stem for p in SHIPPED) and len(SHIPPED) == 152
    assert not {'runtime', 'schedule', 'internvl_finetune', 'tiny_cpu'} & set(listed)  # _base_ is not listed
    for group in ('domain/', 'internvl2/', 'internvl2_5/', 'internvl3/', 'internvl3_5/', 'moe_llava/', 'tinyllava/', 'tiny/'):
        assert group in out.splitlines()
    food = PACKAGE_RECIPES / 'domain' / 'internvl2_2b_lora_food.py'
    first_comment = food.read_text().splitlines()[0].lstrip('# ')
    assert re.search(rf'^  internvl2_2b_lora_food +{re.escape(first_comment)}$', out, re.M)


def test_listed_descriptions_are_whole_sentences():
    from vlmtune.engine.recipes import list_recipes
    rows = list_recipes()
    assert rows and all(description.endswith('.') for _, _, description in rows), \
        [name for _, name, description in rows if not description.endswith('.')]


@pytest.mark.parametrize('pattern, expected', [
    ('INTERNVL3_*_lora', [f'internvl3_{size}_{m}' for size in ('14b', '1b', '2b', '8b') for m in ('lora', 'mpo_lora')]
     + [f'internvl3_5_{size}_{m}' for size in ('14b', '1b', '2b', '30b_a3b', '38b', '4b', '8b')
        for m in ('lora', 'mpo_lora')]),
    ('*a3b*', [f'internvl3_5_30b_a3b_{method}' for method in ('dpo', 'full', 'lora', 'mpo', 'mpo_lora', 'qlora')]),
    ('food', ['blip2_opt_2_7b_lora_food', 'internvl2_2b_lora_food', 'llava15_7b_lora_food', 'llava_next_7b_lora_food',
              'tinyllava_qwen2_lora_food']),
    ('tiny', ['tinyllava_qwen2_lora_food', 'domain_lora_cpu', 'llava_lora_cpu', 'llava_pretrain_cpu', 'lora_cpu', 'moe_cpu', 'mpo_cpu', 'parts_pretrain_cpu',
              'pretrain_cpu'] + [f'tinyllava_qwen2_{s}' for s in ('finetune', 'finetune_partial', 'lora', 'pretrain', 'qformer_pretrain',
                                           'resampler_pretrain')]),
    # the folders (tiny/, tinyllava/) match too
])
def test_list_cfg_filters(pattern, expected, capsys):
    assert cli_main(['list-cfg', pattern]) == 0
    assert re.findall(r'^  (\S+)', capsys.readouterr().out, re.M) == expected


def test_list_cfg_without_match_fails(capsys):
    assert cli_main(['list-cfg', 'nothing-like-this']) == 1
    assert 'no shipped recipe matches' in capsys.readouterr().err


def test_copy_cfg_refuses_to_overwrite_and_leaves_no_temp_file(tmp_path, capsys):
    dest = tmp_path / 'my_food.py'
    assert cli_main(['copy-cfg', 'internvl2_2b_lora_food', str(dest)]) == 0
    dest.write_text('# my edits\n')
    assert cli_main(['copy-cfg', 'internvl2_2b_lora_food', str(dest)]) == 2
    err = error_line(capsys)
    assert str(dest) in err and 'already exists' in err and 'delete it' in err
    assert dest.read_text() == '# my edits\n'
    assert cli_main(['copy-cfg', 'lora_cpu', str(tmp_path / 'new' / 'dir')]) == 0  # a folder: NAME.py inside
    assert (tmp_path / 'new' / 'dir' / 'lora_cpu.py').is_file()
    assert sorted(p.name for p in tmp_path.rglob('*') if p.is_file()) == ['lora_cpu.py', 'my_food.py']


def test_every_copy_parses_from_a_temp_dir_and_equals_its_original(tmp_path, monkeypatch):
    """Copies import their base (or the sibling recipe they extend) absolutely; in this editable install mmengine finds the package through
    the patch that `vlmtune.engine.launch` applies (test_install checks a plain mmengine in a wheel install)."""
    monkeypatch.chdir(tmp_path)
    for recipe in SHIPPED:
        copy = tmp_path / f'{recipe.stem}.py'
        assert cli_main(['copy-cfg', recipe.stem, copy.name]) == 0
        assert 'from vlmtune.recipes.' in copy.read_text() and 'from .' not in copy.read_text()  # a base or a sibling
        ours, original = Config.fromfile(copy.name), Config.fromfile(str(recipe))
        assert ours.model.checkpoint == original.model.checkpoint and ours.model.llm == original.model.llm
        assert ours.pretty_text == original.pretty_text, recipe  # model, dataset, schedule, hooks: all of it


def test_a_plain_copy_with_relative_import_gets_a_one_line_fix(tmp_path, ws, capsys):
    copy = tmp_path / 'copied_by_hand.py'
    copy.write_text((PACKAGE_RECIPES / 'tiny' / 'lora_cpu.py').read_text())
    assert cli_main(['train', str(copy), '--checkpoint', str(ws['folder'])]) == 2
    assert 'vlmtune copy-cfg' in error_line(capsys)


@pytest.mark.parametrize('argv, close', [
    (['train', 'internvl2_2b_lroa'], 'internvl2_2b_lora'),
    (['copy-cfg', 'lora_cpo', 'x.py'], 'lora_cpu'),
    (['convert', 'internvl3_8b_qlor', 'ckpt.pth', 'out'], 'internvl3_8b_qlora'),
])
def test_unknown_name_lists_close_matches(argv, close, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(launch, 'run_quietly', lambda *a, **k: pytest.fail('launched'))
    assert cli_main(argv) == 2
    err = error_line(capsys)
    assert close in err and 'vlmtune list-cfg' in err
    assert not list(tmp_path.iterdir())


def test_single_process_env_and_torchrun_port(ws, monkeypatch):
    env = launch.single_process_env({'PATH': '/bin'})
    assert env['MASTER_ADDR'] == '127.0.0.1' and 1024 < int(env['MASTER_PORT']) < 65536
    assert (env['RANK'], env['LOCAL_RANK'], env['WORLD_SIZE']) == ('0', '0', '1')  # skips DeepSpeed's MPI discovery
    assert launch.single_process_env({'MASTER_PORT': '12345'})['MASTER_PORT'] == '12345'  # the user's choice
    calls = []
    monkeypatch.setattr(launch, 'run_quietly', lambda cmd, env, work_dir: calls.append(cmd) or 0)
    monkeypatch.setenv('MASTER_PORT', '23456')
    assert launch.train('lora_cpu', cfg_options=ws['options'], nproc=2) == 0
    assert '--master_port=23456' in calls[0] and str(PACKAGE_RECIPES / 'tiny' / 'lora_cpu.py') in calls[0]


@pytest.mark.trainings
def test_train_by_name_from_a_temp_dir(ws, tmp_path):
    result = subprocess.run(train_cmd(ws, 'lora_cpu', '--cfg-options', *TWO_ITERS), cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(PACKAGE_RECIPES / 'tiny' / 'lora_cpu.py') in result.stdout
    assert (tmp_path / 'work_dirs' / 'lora_cpu' / 'iter_2.pth').is_file()  # default work dir: the name


@pytest.mark.trainings
def test_readme_walkthrough_copied_food_recipe_trains(ws, tmp_path, monkeypatch):
    """`vlmtune copy-cfg internvl2_2b_lora_food my_food.py` then `vlmtune train my_food.py` on tiny inputs;
    its validation and chat-probe hooks are pointed at tiny files too (they run here)."""
    monkeypatch.chdir(tmp_path)
    assert cli_main(['copy-cfg', 'internvl2_2b_lora_food', 'my_food.py']) == 0
    hooks = [f'custom_hooks.1.data_path={ws["data"]}', f'custom_hooks.1.image_root={ws["images"]}',
             'custom_hooks.1.interval=2', f'custom_hooks.2.probes.0.image={next(ws["images"].glob("*.png"))}']
    options = ['train_cfg.max_epochs=None', 'train_cfg.max_iters=2', *hooks]
    launch.precheck(launch.load_recipe('my_food.py', ws['options'] + options))
    result = subprocess.run(train_cmd(ws, 'my_food.py', '--cfg-options', *options), cwd=tmp_path,
                            env=child_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert '[validation] iter' in log and '[chat probe end]' in log
    assert (tmp_path / 'work_dirs' / 'my_food' / 'iter_2.pth').is_file()


@pytest.mark.trainings
def test_two_trains_started_together_both_succeed(ws, tmp_path):
    """Without a port of its own, each single-process DeepSpeed run binds 29500: the second died with
    EADDRINUSE."""
    started = time.monotonic()
    procs = [subprocess.Popen(train_cmd(ws, 'lora_cpu', '--deepspeed', 'zero2', '--work-dir', str(tmp_path / name),
                                        '--cfg-options', *TWO_ITERS),
                              cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name in ('a', 'b')]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, log, name in zip(procs, logs, ('a', 'b')):
        assert proc.returncode == 0, log[-3000:]
        assert (tmp_path / name / 'iter_2.pth').is_dir()  # DeepSpeed writes a folder
    ports = [re.search(r'MASTER_PORT=(\d+)', log).group(1) for log in logs]
    assert ports[0] != ports[1]
    print(f'two concurrent ZeRO-2 runs: {time.monotonic() - started:.0f} s')
