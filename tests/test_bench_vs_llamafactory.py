"""benchmarks/bench_vs_llamafactory.py in CI-sized form: LLaMA-Factory 0.9.5 (from its cached side environment)
on the tiny folder's -hf copy and our recipe each train 3 iterations on the same rows; both rows and the ratio
are printed."""
import re
import subprocess
import sys

from conftest import REPO


def test_benchmark_reports_both_rows(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'bench_vs_llamafactory.py'), '--iters', '3',
                             '--skip', '0', '--rows', '4', '--dtypes', 'fp32', '--repeats', '1'],
                            cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(
        r'^\| (LLaMA-Factory 0\.9\.5 \(fp32\)|vlmtune train \(fp32\)) \| ([\d.]+) \| ([\d.]+) \| (\d+) \| (\d+) \| '
        r'([\d.]+)x \|$', result.stdout, re.MULTILINE)}
    assert set(rows) == {'LLaMA-Factory 0.9.5 (fp32)', 'vlmtune train (fp32)'}, result.stdout[-3000:]
    theirs, ours = rows['LLaMA-Factory 0.9.5 (fp32)'], rows['vlmtune train (fp32)']
    for row in (theirs, ours):  # s/iter, samples/s, tokens/s, peak RSS MiB
        assert float(row[0]) > 0 and float(row[1]) > 0 and int(row[2]) > 0 and int(row[3]) > 100, row
    assert theirs[4] == '1.00'  # the baseline row
    assert abs(float(ours[4]) - float(theirs[0]) / float(ours[0])) < 0.01 + 0.01 * float(ours[4])  # the ratio column
