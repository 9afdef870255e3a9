"""benchmarks/bench_vs_xtuner.py in CI-sized form: XTuner's own InternVL LoRA config (read from the installed
xtuner) and our recipe each train 3 iterations on the same tiny folder; both rows, the ratio and the profile
are printed."""
import re
import subprocess
import sys

from conftest import REPO


def test_benchmark_reports_both_rows_and_the_profile(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'bench_vs_xtuner.py'), '--iters', '3',
                             '--skip', '0', '--rows', '4', '--dtypes', 'fp32', '--profile-steps', '1'],
                            cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(
        r'^\| (XTuner InternVL_V1_5 \(bf16\)|vlmtune train \(fp32\)) \| ([\d.]+) \| ([\d.]+) \| (\d+) \| (\d+) \| ([\d.]+)x \|$',
        result.stdout, re.MULTILINE)}
    assert set(rows) == {'XTuner InternVL_V1_5 (bf16)', 'vlmtune train (fp32)'}, result.stdout[-3000:]
    xtuner, ours = rows['XTuner InternVL_V1_5 (bf16)'], rows['vlmtune train (fp32)']
    assert float(xtuner[0]) > 0 and float(ours[0]) > 0 and int(xtuner[3]) > 100 and int(ours[3]) > 100  # s/iter, MiB
    assert abs(float(ours[4]) - float(xtuner[0]) / float(ours[0])) < 0.01 + 0.01 * float(ours[4])  # the ratio column
    parts = dict(re.findall(r'^\| (data|ViT|LLM forward|backward|optimizer) \| ([\d.]+) \|', result.stdout, re.MULTILINE))
    assert set(parts) == {'data', 'ViT', 'LLM forward', 'backward', 'optimizer'}, result.stdout[-3000:]
    assert all(float(parts[k]) > 0 for k in ('data', 'ViT', 'LLM forward', 'backward')), parts  # each part timed
    assert 'DeepSpeed + runner' in result.stdout
