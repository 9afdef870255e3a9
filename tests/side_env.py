"""The tests' side environments (vlmtune/side_envs.py): other transformers versions and oracles,
installed once into the side-env cache and put first on PYTHONPATH of a subprocess.

    root = side_env('tf-4.57')   # path for PYTHONPATH
"""
from pathlib import Path

from vlmtune.side_envs import side_env as make_side_env

# Each set is what that environment needs beyond the project venv (torch, sentencepiece, PIL, ...);
# deps are pinned and installed without resolution so nothing of the venv is replaced.
ENVS = {
    # The official InternVL repo's environment.
    'official-4.37.2': ['transformers==4.37.2', 'tokenizers==0.15.2'],
    # Last 4.x: what vLLM / LMDeploy users meet beside the project.
    'tf-4.57': ['transformers==4.57.6', 'tokenizers==0.22.1', 'huggingface-hub==0.36.0'],
    # lmms-eval's benchmark scorers, the oracle of vlmtune.bench (only its scoring files are loaded).
    'lmms-eval-0.7.3': ['lmms-eval==0.7.3'],
    # Newest 5.x; it needs torch >= 2.6, so the env carries the machine's CPU torch and its torchvision.
    'tf-5.24': ['transformers==5.24.0', 'tokenizers==0.23.1', 'huggingface-hub==1.31.0', 'torch==2.13.0',
                'torchvision==0.28.0'],
}


def side_env(name: str, pins=None, timeout: int = 1800) -> Path:
    """Install `pins` (default ENVS[name]) into the cache once; returns the folder."""
    return make_side_env(name, list(pins or ENVS[name]), timeout)
