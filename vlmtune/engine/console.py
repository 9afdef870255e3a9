"""What `vlmtune train` shows of a training process: progress, losses, the package's own reports and the
warnings that matter. Every line goes to WORK_DIR/train.log; on a failure the log's tail is shown. The
start-up dumps (environment, the whole config, hook tables, DeepSpeed's config) and the known harmless
warnings stay in the log. VLMTUNE_VERBOSE=1 (or `vlmtune train --verbose`) shows everything."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

SHOWN_INFO = re.compile(r' - mmengine - INFO - (Iter\(|Epoch\(|Saving checkpoint|Checkpoints will be saved|'
                        r'trainability:|\[)')                     # [chat probe ...], [validation], [moe], [bench]
SHOWN_LEVELS = re.compile(r' - mmengine - (WARNING|ERROR|CRITICAL) - |^\[[^]]*\] \[(WARNING|ERROR)\] |'
                          r'Traceback|Error:|error:|cannot be trained|^running: |^meta file: ')
HARMLESS = ('has no metainfo', '"FileClient" will be deprecated', '"HardDiskBackend" is the alias',
            'Setting accelerator to CPU', 'compiled without GPU support', 'TorchScript` support',
            'from torch.distributed.optim import', 'SyncBatchNorm')
FAILURE_TAIL = 40


def verbose() -> bool:
    return os.environ.get('VLMTUNE_VERBOSE', '') not in ('', '0')


class ConsoleFilter:
    """Decides line by line; a line that starts with spaces continues the one before (a report's details)."""

    def __init__(self):
        self.showing = False

    def __call__(self, line: str) -> bool:
        if line.startswith('  ') and not line.strip().startswith('-'):
            return self.showing
        self.showing = not any(noise in line for noise in HARMLESS) and bool(SHOWN_INFO.search(line)
                                                                              or SHOWN_LEVELS.search(line))
        return self.showing


def run_quietly(cmd, env, work_dir) -> int:
    """Run `cmd`, every line into WORK_DIR/train.log, the lines a user needs on the console; the exit status."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path, shows, started = work_dir / 'train.log', ConsoleFilter(), time.perf_counter()
    with open(log_path, 'a', encoding='utf-8') as log, \
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             errors='replace', bufsize=1) as process:
        for line in process.stdout:
            log.write(line)
            if verbose() or shows(line.rstrip('\n')):
                sys.stdout.write(line)
                sys.stdout.flush()
        status = process.wait()
    seconds = time.perf_counter() - started
    if status != 0:
        tail = log_path.read_text(encoding='utf-8', errors='replace').splitlines()[-FAILURE_TAIL:]
        print('\n'.join(tail), file=sys.stderr)
        print(f'training failed (exit status {status}) after {seconds:.0f} s; the whole output: {log_path}',
              file=sys.stderr)
    else:
        print(f'trained in {seconds:.0f} s; checkpoints in {work_dir}, the whole output in {log_path}')
    return status
