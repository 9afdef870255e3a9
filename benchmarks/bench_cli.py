"""Benchmark: how long the CLI takes to answer, each command a fresh process as a user starts it, beside
`python -c pass` (the interpreter alone) and `import torch` (what the light commands no longer pay).

    python benchmarks/bench_cli.py                # 3 runs each, the median printed
    python benchmarks/bench_cli.py --folder DIR   # also `vlmtune inspect DIR` (default: a tiny folder it builds)
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def seconds(argv, runs) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=REPO, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--folder', help='a checkpoint folder for `inspect`')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            sys.path.insert(0, str(REPO))
            from vlmtune.tiny import TinySpec, make_tiny_folder
            folder = str(make_tiny_folder(Path(tmp) / 'tiny', TinySpec()))
        cli = [sys.executable, '-m', 'vlmtune.cli']
        rows = [('python -c pass', [sys.executable, '-c', 'pass']),
                ('python -c "import torch"', [sys.executable, '-c', 'import torch']),
                ('vlmtune --help', cli + ['--help']),
                ('vlmtune train --help', cli + ['train', '--help']),
                ('vlmtune list-cfg', cli + ['list-cfg']),
                ('vlmtune copy-cfg lora_cpu', cli + ['copy-cfg', 'lora_cpu', str(Path(tmp) / 'copies')]),
                ('vlmtune inspect FOLDER', cli + ['inspect', folder])]
        print('| command | seconds (median of %d) | vs import torch |\n|---|---|---|' % args.runs)
        torch_s = None
        for name, argv in rows:
            if name.startswith('vlmtune copy-cfg'):
                Path(tmp, 'copies').mkdir(exist_ok=True)
                for old in Path(tmp, 'copies').glob('*.py'):
                    old.unlink()
            s = seconds(argv, args.runs if 'copy-cfg' not in name else 1)
            torch_s = s if 'import torch' in name else torch_s
            print(f'| {name} | {s:.2f} | {s / torch_s:.2f}x |' if torch_s else f'| {name} | {s:.2f} | |', flush=True)


if __name__ == '__main__':
    main()
