"""The GPU training benchmark script, run end to end on a tiny model on CPU (SHAPE=tiny DEVICE=cpu):
padded and packed rows run, QLoRA is reported as not run (no GPU) instead of failing the table, and
the ZeRO-2 row goes through `vlmtune train` with the real InternVL2-2B LoRA recipe."""
import json
import os
import subprocess
import sys
from pathlib import Path

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
