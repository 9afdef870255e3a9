"""`tools/chat.py` driven as a user would: through a pseudo-terminal, and with piped stdin."""
import codecs
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]')
ANSWER = re.compile(r'assistant: (.*?)\n>>> ', re.S)
MISSING = re.compile(r'error: /nonexistent\.png: cannot read image \([^\n]*\)\n>>> ')

pytestmark = pytest.mark.skipif(not hasattr(os, 'openpty'), reason='needs a POSIX pseudo-terminal')


@pytest.fixture
def chat_argv(tiny_folder, tmp_path):
    image = tmp_path / 'red.png'
    Image.new('RGB', (64, 48), 'red').save(image)
    return [sys.executable, str(REPO / 'tools' / 'chat.py'), str(tiny_folder()), '--image', str(image),
            '--max-new-tokens', '6']


class PtyChat:
    """The chat as a child process on a pseudo-terminal; every wait shares one deadline."""

    def __init__(self, argv, timeout=45.0):
        master, slave = os.openpty()
        env = dict(os.environ, TERM='xterm')
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.fd, self.deadline = master, time.monotonic() + timeout
        self.decoder, self.raw, self.pos = codecs.getincrementaldecoder('utf-8')('replace'), '', 0

    @property
    def text(self) -> str:
        return ANSI.sub('', self.raw).replace('\r\n', '\n').replace('\r', '')

    def _read(self, wait) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, wait))
        if not ready:
            return True
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            data = b''
        self.raw += self.decoder.decode(data)
        return bool(data)

    def expect(self, pattern) -> re.Match:
        pattern = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        while True:
            match = pattern.search(self.text, self.pos)
            if match:
                self.pos = match.end()
                return match
            left = self.deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 1.0)):
                raise AssertionError(f'{pattern.pattern!r} not seen; output so far:\n{self.text}')

    def send(self, line):
        os.write(self.fd, (line + '\n').encode())
        self.pos = self.expect(line + '\n').start()   # the terminal's echo; match what follows it

    def wait(self) -> int:
        while self._read(min(1.0, self.deadline - time.monotonic())) and time.monotonic() < self.deadline:
            pass
        return self.proc.wait(timeout=max(1.0, self.deadline - time.monotonic()))

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.fd)


def test_chat_on_a_terminal(chat_argv):
    chat = PtyChat(chat_argv)
    try:
        banner = chat.expect(re.compile(r'model: .*\n.*/image.*/reset.*/exit.*\n>>> '))
        assert 'backend: torch' in chat.text[:banner.end()]
        for question in ('What is in the image?', 'And its colour?'):
            chat.send(question)
            assert chat.expect(ANSWER).group(1).strip(), chat.text   # ends on the next prompt
        chat.send('/image /nonexistent.png')
        chat.expect(MISSING)
        chat.send('/reset')
        chat.expect('session reset\n>>> ')
        chat.send('Describe it again.')
        assert chat.expect(ANSWER).group(1).strip(), chat.text
        chat.send('/exit')
        assert chat.wait() == 0, chat.text
        assert chat.text.count('assistant: ') == 3
    finally:
        chat.close()


def test_chat_with_piped_stdin(chat_argv):
    script = 'What is in the image?\nAnd its colour?\n/image /nonexistent.png\n/reset\nAgain?\n'  # EOF ends it
    result = subprocess.run(chat_argv, input=script, capture_output=True, text=True, cwd=REPO, timeout=45)
    assert result.returncode == 0, result.stderr
    answers = re.findall(r'assistant: (.*?)\n', result.stdout)
    assert len(answers) == 3 and all(a.strip() for a in answers), result.stdout
    assert 'session reset' in result.stdout
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith('error: /nonexistent.png: cannot read image'), result.stderr


def test_unreadable_start_image_fails_before_loading(tmp_path, capsys):
    from vlmtune.serve.terminal_chat import main
    assert main([str(tmp_path / 'no-model'), '--image', str(tmp_path / 'missing.png')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and 'missing.png: cannot read image' in err and '\n' not in err


def test_quantized_loading_is_one_clear_line_without_a_gpu(tiny_folder, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('a GPU is present: 4/8-bit loading runs (gpu_train.sh covers bitsandbytes)')
    for flag in ('--load-4bit', '--load-8bit'):
        result = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'chat', str(tiny_folder()), flag],
                                input='/exit\n', capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and 'needs a CUDA GPU (bitsandbytes has no CPU kernels)' in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    from vlmtune.cli import main
    from vlmtune.bench.samples import write_sample
    assert main(['eval', str(tiny_folder()), '--bench', 'pope', str(write_sample('pope', tmp_path / 'p')),
                 '--load-8bit']) == 2
