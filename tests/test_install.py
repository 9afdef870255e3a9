"""A non-editable install works away from the checkout: list-cfg, copy-cfg (the copy parses with a plain
mmengine, as `xtuner train COPY` would read it), and training a shipped recipe by name under ZeRO-2 with the
DeepSpeed JSON found inside the installed package.

The wheel is built (`pip wheel --no-deps`; build isolation fetches only setuptools and wheel from the
index) from a copy of the sources, so no build/ or egg-info lands in the checkout, and installed with
--no-deps into a fresh venv. The heavy dependencies (torch, xtuner, DeepSpeed, ~7 GB) are not reinstalled,
which would cost minutes and gigabytes per CI run: a .pth file in the fresh venv's site-packages appends the
running interpreter's site-packages, computed at test time. A path line in a .pth does not run that folder's
own .pth files, so an editable vlmtune installed there stays inactive. ~50 s here, most of it the training.
"""
import os
import shutil
import site
import subprocess
import sys
import zipfile
import pytest
from pathlib import Path

from helpers.probes import REPO

pytestmark = pytest.mark.trainings

SOURCES = ('vlmtune', 'datasets_proc', 'pyproject.toml', 'README.md')


def run(cmd, cwd, env=None, timeout=600):
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (cmd, result.stdout[-2000:], result.stderr[-3000:])
    return result


def build_wheel(tmp: Path) -> Path:
    src = tmp / 'src'
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copy2(REPO / name, src / name)
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', tmp / 'dist', src], cwd=tmp)
    (wheel,) = (tmp / 'dist').glob('vlmtune-*.whl')
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(REPO).as_posix() for p in (REPO / 'vlmtune' / 'recipes').rglob('*')
               if p.suffix in ('.py', '.json')}
    assert len(shipped) > 50 and not shipped - names, sorted(shipped - names)  # every recipe, base and JSON
    return wheel


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / 'venv'
    run([sys.executable, '-m', 'venv', '--without-pip', venv], cwd=tmp)
    python = venv / 'bin' / 'python'
    run([sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps', '-q', wheel], cwd=tmp)
    purelib = run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], cwd=tmp).stdout.strip()
    (Path(purelib) / 'project_deps.pth').write_text(''.join(f'{p}\n' for p in site.getsitepackages()))
    return venv


def test_wheel_install_lists_copies_and_trains_by_name(ws, tmp_path):
    wheel = build_wheel(tmp_path)
    venv = fresh_venv(tmp_path, wheel)
    outside = tmp_path / 'outside'
    outside.mkdir()
    assert REPO not in outside.parents
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'MASTER_PORT', 'PORT')}
    env['PATH'] = f'{venv / "bin"}{os.pathsep}{env.get("PATH", "")}'
    python, vlmtune = venv / 'bin' / 'python', venv / 'bin' / 'vlmtune'

    probe = run([python, '-c', 'import sys, vlmtune; print(vlmtune.__file__); print(*sys.path, sep="\\n")'], outside, env)
    installed, *path = probe.stdout.splitlines()
    assert Path(installed).is_relative_to(venv), installed
    deps = [Path(p).resolve() for p in site.getsitepackages()]  # the project venv may live inside the checkout
    assert not any(p and Path(p).resolve().is_relative_to(REPO) and Path(p).resolve() not in deps for p in path), path

    listing = run([vlmtune, 'list-cfg'], outside, env).stdout
    assert 'lora_cpu' in listing and 'internvl2_2b_lora_food' in listing and 'internvl3_8b_qlora' in listing

    run([vlmtune, 'copy-cfg', 'lora_cpu', './my.py'], outside, env)
    assert 'from vlmtune.recipes._base_.internvl_finetune import *' in (outside / 'my.py').read_text()
    parsed = run([python, '-c', 'from mmengine.config import Config; print(Config.fromfile("my.py").model.lora)'],
                 outside, env)  # plain mmengine: no vlmtune patch imported
    assert "'r': 8" in parsed.stdout

    result = run([vlmtune, 'train', 'lora_cpu', '--checkpoint', ws['folder'], '--data', ws['data'],
                  '--images', ws['images'], '--deepspeed', 'zero2',
                  '--cfg-options', 'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2'], outside, env)
    running = next(line for line in result.stdout.splitlines() if line.startswith('running: '))
    package = Path(installed).parent
    assert str(package / 'recipes' / 'tiny' / 'lora_cpu.py') in running
    assert str(package / 'recipes' / '_base_' / 'deepspeed' / 'zero2_cpu.json') in running
    assert str(REPO) not in running
    assert (outside / 'work_dirs' / 'lora_cpu' / 'iter_2.pth').is_dir()
