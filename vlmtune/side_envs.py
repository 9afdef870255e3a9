"""Cached side environments: other package versions installed once with `pip install --no-deps --target`
into a cache folder, then put first on PYTHONPATH of a subprocess only (the way users meet them beside the
official InternVL repo, vLLM, a newer LMDeploy or another trainer). The tests' environments
(tests/side_env.py) and the peer benchmarks' (benchmarks/bench_vs_llamafactory.py) are made here.

    root = side_env('tf-4.57', ['transformers==4.57.6', ...])   # path for PYTHONPATH
"""
import os
import subprocess
import sys
from pathlib import Path

from .serve.engines import TORCHVISION_CPU_FIX

CACHE = Path(os.environ.get('VLMTUNE_SIDE_ENVS', Path.home() / '.cache' / 'vlmtune' / 'side-envs'))


def side_env(name: str, pins: list, timeout: int = 1800) -> Path:
    """Install `pins` into CACHE/name once; returns the folder. Deps are pinned and installed without
    resolution, so nothing of the project venv is replaced."""
    root = CACHE / name
    marker = root / '.complete'
    if marker.exists() and marker.read_text() == '\n'.join(pins):
        return root
    result = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--upgrade', '--target',
                             str(root), *pins], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f'could not install {pins} into {root}: {result.stderr[-2000:]}')
    if any(p.startswith('torchvision==') for p in pins):
        # PyPI's torchvision beside a CPU torch needs the fix vLLM's environment gets too (serve/engines.py);
        # Python runs sitecustomize.py from PYTHONPATH at start-up.
        (root / 'sitecustomize.py').write_text(TORCHVISION_CPU_FIX)
    marker.write_text('\n'.join(pins))
    return root
