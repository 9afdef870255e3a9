"""The GPU training benchmark's code path, on a tiny model on CPU: padded and packed rows run and
count the same samples; QLoRA is reported as not run (no GPU) instead of failing the table."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_train_benchmark_tiny_cpu(tmp_path):
    rows_path = tmp_path / 'rows.json'
    out = subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'gpu_train.py'), '--shape', 'tiny', '--device',
                          'cpu', '--steps', '2', '--samples', '16', '--max-length', '512', '--json', str(rows_path)],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r['mode']: r for r in json.loads(rows_path.read_text())}
    assert rows['padded']['samples'] == 2 * 4 and rows['padded']['samples_per_s'] > 0
    assert rows['packed']['samples'] >= 2 and rows['packed']['samples_per_s'] > 0
    assert 'CUDA' in rows['qlora']['error'] or 'GPU' in rows['qlora']['error'], rows['qlora']
    assert 'packed / padded samples/s' in out.stdout and 'qlora    not run' in out.stdout
