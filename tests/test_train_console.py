"""`vlmtune train`'s console: progress, losses, the package's reports and the warnings that matter; the
whole output in WORK_DIR/train.log; a failure shows the log's tail and where the log is."""
import subprocess

import pytest

from helpers.training import vlmtune_cmd
from vlmtune.engine.console import ConsoleFilter

SAMPLE = """running: python -m vlmtune.engine.xtuner_main lora_cpu.py
The installed version of bitsandbytes was compiled without GPU support. 8-bit optimizers are unavailable.
[2026-12-07 15:43:01,399] [WARNING] [real_accelerator.py:181:get_accelerator] Setting accelerator to CPU.
12/07 15:43:04 - mmengine - INFO -
    sys.platform: linux
12/07 15:43:05 - mmengine - INFO - trainability: vision_tower=frozen, connector=full, llm=lora
  trainable parameters: 29,056 / 200,928 (14.46%)
12/07 15:43:05 - mmengine - INFO - Hooks will be executed in the following order:
(VERY_HIGH   ) RuntimeInfoHook
12/07 15:43:05 - mmengine - WARNING - Dataset ConversationDataset has no metainfo.
12/07 15:43:05 - mmengine - WARNING - the learning rate is nan
data.jsonl: 3 row(s) cannot be trained and are skipped, e.g. row 2: image missing
12/07 15:43:05 - mmengine - INFO - Iter(train) [1/6]  lr: 2.0000e-03  loss: 6.1136
12/07 15:43:06 - mmengine - INFO - [loss] iteration 6: 5.7972 (first this run: 6.1136)"""
SHOWN = {0, 5, 6, 10, 11, 12, 13}


def test_the_console_filter_keeps_what_users_need():
    shows = ConsoleFilter()
    assert {i for i, line in enumerate(SAMPLE.splitlines()) if shows(line)} == SHOWN


@pytest.mark.trainings
def test_a_six_iteration_train_prints_under_forty_lines_and_logs_everything(ws):
    work_dir = ws['root'] / 'console'
    result = subprocess.run(vlmtune_cmd(ws, work_dir, '--iters', '6'), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) <= 40, '\n'.join(lines)
    assert not result.stderr, result.stderr   # no import-time notices from the launcher either
    assert any('[loss] iteration 6:' in line for line in lines) and 'train.log' in result.stdout.splitlines()[-1]
    log = (work_dir / 'train.log').read_text()
    assert 'System environment' in log and 'Iter(train) [6/6]' in log and len(log.splitlines()) > 100


@pytest.mark.trainings
def test_a_failing_train_shows_the_log_tail_and_where_the_log_is(ws):
    work_dir = ws['root'] / 'console-fails'
    result = subprocess.run(vlmtune_cmd(ws, work_dir, '--iters', '2', '--cfg-options', 'train_dataloader.batch_size=0'),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode != 0
    assert 'batch_size' in result.stderr and f'the whole output: {work_dir / "train.log"}' in result.stderr
