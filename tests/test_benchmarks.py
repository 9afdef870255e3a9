"""The GPU training benchmark script, run end to end on a tiny model on CPU (SHAPE=tiny DEVICE=cpu):
padded and packed rows run, QLoRA is reported as not run (no GPU) instead of failing the table, and
the ZeRO-2 row goes through `vlmtune train` with the real InternVL2-2B LoRA recipe. The packing
benchmark plans every registered LLM family and runs one in its quick mode."""
import json
import os
import subprocess
import sys
import pytest
from pathlib import Path

pytestmark = pytest.mark.peers

REPO = Path(__file__).resolve().parents[1]


def test_gpu_train_script_on_tiny_cpu(tmp_path):
    env = dict(os.environ, SHAPE='tiny', DEVICE='cpu', PYTHON=sys.executable)
    out = subprocess.run(['bash', str(REPO / 'benchmarks' / 'gpu_train.sh'), str(tmp_path / 'work'), '--steps', '2',
                          '--samples', '16', '--max-length', '512'], capture_output=True, text=True, cwd=REPO,
                         env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = {r['mode']: r for r in json.loads((tmp_path / 'work' / 'rows.json').read_text())}
    assert rows['padded']['samples'] == 2 * 4 and rows['padded']['samples_per_s'] > 0
    assert rows['packed']['samples'] >= 2 and rows['packed']['samples_per_s'] > 0
    assert 'CUDA' in rows['qlora']['error'], rows['qlora']
    assert 'packed / padded samples/s' in out.stdout and 'qlora    not run' in out.stdout
    zero2 = [line for line in out.stdout.splitlines() if line.startswith('zero2 ')]
    assert len(zero2) == 1 and float(zero2[0].split()[1]) > 0, out.stdout[-1500:]
    assert 'Iter(train) [22/22]' in (tmp_path / 'work' / 'zero2.log').read_text()


def bench_packing(*args):
    out = subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'bench_packing.py'), *args], capture_output=True,
                         text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def test_bench_packing_plans_every_family_and_runs_quick():
    """Every registered LLM family is benchmarked, or named as skipped with why; one family's quick
    run (a step per mode) prints the padded / packed table."""
    from vlmtune.model.llm import REGISTRY
    plan = dict(line.split(': ', 1) for line in bench_packing('--list').splitlines())
    assert sorted(plan) == REGISTRY.names()
    for family, status in plan.items():
        assert status == 'runs' if REGISTRY.get(family).packing else status.startswith('skipped ('), (family, status)
    lines = bench_packing('--quick', '--steps', '1', '--samples', '16', '--batch-size', '2', '--max-length', '512',
                          '--llm', 'internlm2').splitlines()
    assert lines[0] == '== internlm2' and lines[1].split()[:2] == ['mode', 'tokens/s'], lines
    rows = {line.split()[0]: line.split() for line in lines[2:4]}
    assert float(rows['padded'][1]) > 0 and float(rows['packed'][1]) > 0 and rows['packed'][3] == '0.0%', lines
    assert lines[4].startswith('packed / padded tokens/s: '), lines


def test_bench_moe_prints_dense_and_moe_side_by_side():
    out = subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'bench_moe.py'), '--steps', '1', '--length', '64',
                          '--width', '64', '--layers', '2'], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.startswith(('dense', 'moe E4'))}
    dense, moe = rows['dense'], rows['moe']
    assert float(dense[1]) > 0 and float(moe[3]) > 0
    total, active = int(moe[5].replace(',', '')), int(moe[6].replace(',', ''))
    assert int(dense[3].replace(',', '')) == int(dense[4].replace(',', '')) < active < total
    assert 'moe / dense: train' in out.stdout
