"""Cached side environments: other transformers versions installed once with `pip install --target`
into a cache folder, then put first on PYTHONPATH of a subprocess (the way users meet them beside
the official InternVL repo, vLLM or a newer LMDeploy).

    root = side_env('tf-4.57', ['transformers==4.57.6', ...])   # path for PYTHONPATH
"""
import os
import subprocess
import sys
from pathlib import Path

# PyPI's torchvision 0.28 beside a CPU torch needs the fix vLLM's environment gets too (serve/engines.py);
# Python runs sitecustomize.py from PYTHONPATH at start-up.
from vlmtune.serve.engines import TORCHVISION_CPU_FIX

CACHE = Path(os.environ.get('VLMTUNE_SIDE_ENVS', Path.home() / '.cache' / 'vlmtune' / 'side-envs'))

# Each set is what that transformers needs beyond the project venv (torch, sentencepiece, PIL, ...);
# deps are pinned and installed without resolution so nothing of the venv is replaced.
ENVS = {
    # The official InternVL repo's environment.
    'official-4.37.2': ['transformers==4.37.2', 'tokenizers==0.15.2'],
    # Last 4.x: what vLLM / LMDeploy users meet beside the project.
    'tf-4.57': ['transformers==4.57.6', 'tokenizers==0.22.1', 'huggingface-hub==0.36.0'],
    # Newest 5.x; it needs torch >= 2.6, so the env carries the machine's CPU torch and its torchvision.
    # lmms-eval's benchmark scorers, the oracle of vlmtune.bench (only its scoring files are loaded).
    'lmms-eval-0.7.3': ['lmms-eval==0.7.3'],
    'tf-5.24': ['transformers==5.24.0', 'tokenizers==0.23.1', 'huggingface-hub==1.31.0', 'torch==2.13.0',
                'torchvision==0.28.0'],
}



def side_env(name: str, pins=None, timeout: int = 1800) -> Path:
    """Install `pins` (default ENVS[name]) into CACHE/name once; returns the folder."""
    pins = list(pins or ENVS[name])
    root = CACHE / name
    marker = root / '.complete'
    if marker.exists() and marker.read_text() == '\n'.join(pins):
        return root
    result = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--upgrade', '--target',
                             str(root), *pins], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f'could not install {pins} into {root}: {result.stderr[-2000:]}')
    if any(p.startswith('torchvision==') for p in pins):
        (root / 'sitecustomize.py').write_text(TORCHVISION_CPU_FIX)
    marker.write_text('\n'.join(pins))
    return root
