"""The peer benchmarks in CI-sized form: each trains 3 iterations of the peer's own path and of our recipe on
the same tiny folder and rows, and prints both rows with the ratio. bench_vs_xtuner.py runs XTuner's own
InternVL LoRA config (read from the installed xtuner) and prints a profile of our step;
bench_vs_llamafactory.py runs LLaMA-Factory 0.9.5 from its cached side environment on the -hf copy."""
import re
import subprocess
import sys

import pytest
from helpers.probes import REPO

pytestmark = pytest.mark.peers


def peer_rows(tmp_path, script, baseline, *args):
    """(stdout, {row name: (s/iter, samples/s, tokens/s, peak RSS MiB, ratio)}) of the peer and our fp32 row."""
    result = subprocess.run([sys.executable, str(REPO / 'benchmarks' / script), '--iters', '3', '--skip', '0',
                             '--rows', '4', '--dtypes', 'fp32', *args], cwd=tmp_path, capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    names = (baseline, 'vlmtune train (fp32)')
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(
        rf'^\| ({"|".join(re.escape(n) for n in names)}) \| ([\d.]+) \| ([\d.]+) \| (\d+) \| (\d+) \| ([\d.]+)x \|$',
        result.stdout, re.MULTILINE)}
    assert set(rows) == set(names), result.stdout[-3000:]
    for row in rows.values():
        assert float(row[0]) > 0 and float(row[1]) > 0 and int(row[2]) > 0 and int(row[3]) > 100, row
    theirs, ours = rows[baseline], rows['vlmtune train (fp32)']
    assert theirs[4] == '1.00'  # the baseline row
    assert abs(float(ours[4]) - float(theirs[0]) / float(ours[0])) < 0.01 + 0.01 * float(ours[4])  # the ratio column
    return result.stdout, rows


def test_bench_vs_xtuner_reports_both_rows_and_the_profile(tmp_path):
    stdout, _ = peer_rows(tmp_path, 'bench_vs_xtuner.py', 'XTuner InternVL_V1_5 (bf16)', '--profile-steps', '1')
    parts = dict(re.findall(r'^\| (data|ViT|LLM forward|backward|optimizer) \| ([\d.]+) \|', stdout, re.MULTILINE))
    assert set(parts) == {'data', 'ViT', 'LLM forward', 'backward', 'optimizer'}, stdout[-3000:]
    assert all(float(parts[k]) > 0 for k in ('data', 'ViT', 'LLM forward', 'backward')), parts  # each part timed
    assert 'DeepSpeed + runner' in stdout


def test_bench_vs_llamafactory_reports_both_rows(tmp_path):
    peer_rows(tmp_path, 'bench_vs_llamafactory.py', 'LLaMA-Factory 0.9.5 (fp32)', '--repeats', '1')
