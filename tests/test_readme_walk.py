"""The README walk: every block of README.md runs as written, in order, in one workspace of tiny stand-ins laid out
at the README's own paths (models/InternVL2-2B, FoodieQA/sivqa_tidy.json, ...), built with the README's own tool
(tools/make_tiny_model.py). What a user would type differently is one table (helpers/readme_walk.py
SUBSTITUTIONS: placeholders such as FILE or OUT, and every training shortened to 2 iterations). A block that does not
run as written fails here, naming its README line.

Commands that another test runs, because they take many minutes or are the suite itself, are listed in
RUN_ELSEWHERE with that test: the walk checks the test names them, and that `vlmtune` parses them as written.
GPU-only commands are listed in GPU_ONLY with the one line they must print on a CPU."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers.readme_walk import blocks, commands, substitute
from helpers.training_data import make_colour_dataset

pytestmark = pytest.mark.trainings

REPO = Path(__file__).resolve().parents[1]
BLOCKS = blocks(REPO / 'README.md')
BIN = Path(sys.executable).parent

# command prefix -> the test (or file) that runs it; checked to name the command's script or subcommand.
RUN_ELSEWHERE = {
    'make test': ('.ci/run', 'make test'),                                    # the suite itself (CI)
    'make demo': ('tests/test_embedded_default.py', 'run_demo'),               # the whole journey (~4 min), --quick there
    'python benchmarks/bench_packing.py': ('tests/test_benchmarks.py', 'bench_packing.py'),  # quick mode there
    'python benchmarks/bench_moe.py': ('tests/test_benchmarks.py', 'bench_moe.py'),
    'python benchmarks/bench_vs_xtuner.py': ('tests/test_bench_vs_peers.py', 'bench_vs_xtuner.py'),
    'python benchmarks/bench_vs_llamafactory.py': ('tests/test_bench_vs_peers.py', 'bench_vs_llamafactory.py'),
    'SHAPE=tiny DEVICE=cpu benchmarks/gpu_train.sh': ('tests/test_benchmarks.py', "'gpu_train.sh'"),
}
# command prefix -> the one line a CPU-only machine must answer with (non-zero exit).
GPU_ONLY = {'benchmarks/gpu_train.sh': r'^gpu_train\.sh: no CUDA GPU here; .*SHAPE=tiny DEVICE=cpu'}
# command prefix -> the address that answers once the long-running command is up (then it is stopped).
SERVERS = {'vlmtune serve': 'http://127.0.0.1:8000/health', 'python demo/app.py': 'http://127.0.0.1:7860/'}
IN_REPO = ('make ',)                         # make targets run in the checkout (its .venv), everything else in the workspace
CHAT_INPUT = 'What is in the picture?\nAnd its colour?\n'   # `vlmtune chat` reads turns from stdin until EOF
# Recipe fragments (python blocks): the shipped recipe each is added to, and the arguments of its 2-iteration run.
FRAGMENT_RUNS = {
    'from vlmtune.engine import BenchmarkEvalHook': ('internvl2_2b_lora', '--checkpoint models/InternVL2-2B'),
    '# on top of a checkpoint folder': ('internvl2_2b_lora', ''),
}


def prefixed(table, text):
    return next((value for prefix, value in table.items() if text.startswith(prefix)), None)


def tiny(ws, out, *args):
    run_ok(ws, shlex.join([sys.executable, str(REPO / 'tools' / 'make_tiny_model.py'), out, *args]))


def run_ok(cwd, text, **kwargs):
    done = subprocess.run(['bash', '-c', text], cwd=cwd, env=walk_env(), capture_output=True, text=True,
                          timeout=1200, **kwargs)
    assert done.returncode == 0, f'{text}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}'
    return done


def walk_env():
    return dict(os.environ, PATH=f'{BIN}{os.pathsep}{os.environ["PATH"]}', PYTHONPATH=str(REPO))


@pytest.fixture(scope='module')
def ws(tmp_path_factory):
    """What a user has beside the README: released folders, raw data, images (tiny stand-ins at its paths)."""
    from datasets_proc.synthetic import write_domain
    from vlmtune.bench.samples import write_sample
    ws = tmp_path_factory.mktemp('readme-walk')
    for name in ('benchmarks', 'tools', 'demo'):
        (ws / name).symlink_to(REPO / name)
    engine = ['--llm', 'qwen2', '--llm-width', '128']  # head_dim 32: vLLM's CPU build serves it
    tiny(ws, 'models/InternVL2-2B', *engine)
    for name in ('base', 'tuned'):
        shutil.copytree(ws / 'models/InternVL2-2B', ws / 'models' / name)
    tiny(ws, 'models/InternVL3_5-30B-A3B', '--llm', 'qwen3_moe', '--template', 'internvl2_5')
    tiny(ws, 'models/internvl-parts', '--parts')
    (ws / 'models/internvl-parts/vision_tower').rename(ws / 'models/InternViT-300M-448px')
    (ws / 'models/internvl-parts/llm').rename(ws / 'models/Qwen2-0.5B-Instruct')
    tiny(ws, 'models/llava-parts', '--llava', 'clip', '--parts', '--image-size', '336')  # LLaVA-1.5's recipes: 336 px
    (ws / 'models/llava-parts/vision_tower').rename(ws / 'models/clip-vit-large-patch14-336')
    (ws / 'models/llava-parts/llm').rename(ws / 'models/vicuna-7b-v1.5')
    tiny(ws, 'models/moe_llava_qwen2_stage2', '--llava', 'clip', '--llm', 'qwen2')
    raw = write_domain(ws / 'FoodieQA', n=40, seed=3)
    raw.rename(ws / 'FoodieQA/sivqa_tidy.json')
    dish = sorted((ws / 'FoodieQA/images').iterdir())[0]
    for name in ('some_dish.jpg', 'probe.jpg'):
        shutil.copy(dish, ws / 'FoodieQA/images' / name)
    captions, images = make_colour_dataset(ws / 'LLaVA-Pretrain', n=8, name='captions.jsonl')
    (ws / 'blip_laion_cc_sbu_558k.json').write_text('[' + ','.join(captions.read_text().split('\n')[:-1]) + ']')
    mix, _ = make_colour_dataset(ws / 'data', n=8, name='llava_v1_5_mix665k.jsonl')  # images under data/, as coco/...
    mix.write_text(mix.read_text().replace('"image": "', '"image": "images/'))
    for name in ('mmbench', 'pope'):  # the benchmark files (and their images) where the README has them
        sample = write_sample(name, ws / f'{name}-sample')
        for path in sample.parent.iterdir():
            path.rename((ws / 'data' if name == 'mmbench' else ws) / path.name)
    return ws


def wait_for(url, process, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, f'{url}: the command exited ({process.returncode}) before answering'
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f'{url} did not answer within {timeout} s')


class Walk:
    def __init__(self, ws):
        self.ws, self.server, self.log = ws, None, []

    def stop_server(self):
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.server.kill()
            self.server = None

    def check_elsewhere(self, command, text, where):
        path, needle = where
        assert needle in (REPO / path).read_text(), f'README line {command.line}: {path} no longer runs {text!r}'
        if text.startswith('vlmtune '):
            from vlmtune.cli import build_parser
            build_parser().parse_args(shlex.split(text)[1:])  # exits (fails the test) on a flag the CLI lacks

    def run(self, command):
        text = substitute(command, self.ws)
        where, refusal = prefixed(RUN_ELSEWHERE, text), prefixed(GPU_ONLY, text)
        if where:
            return self.check_elsewhere(command, text, where)
        cwd = REPO if text.startswith(IN_REPO) else self.ws
        if prefixed(SERVERS, text):
            self.stop_server()
            log = open(self.ws / f'server-{command.line}.log', 'w')
            self.server = subprocess.Popen(['bash', '-c', f'exec {text}'], cwd=cwd, env=walk_env(), stdout=log,
                                           stderr=subprocess.STDOUT)
            return wait_for(prefixed(SERVERS, text), self.server)
        if refusal:
            done = subprocess.run(['bash', '-c', text], cwd=cwd, env=walk_env(), capture_output=True, text=True,
                                  timeout=120)
            lines = (done.stdout + done.stderr).strip().splitlines()
            assert done.returncode != 0 and len(lines) == 1 and re.search(refusal, lines[0]), (command.line, lines)
            return
        chat = text.startswith('vlmtune chat')
        done = run_ok(cwd, text, input=CHAT_INPUT if chat else None)
        self.log.append((command.line, text, done.stdout.count('\n')))

    def fragment(self, block):
        code = '\n'.join(text for _, text in block.body)
        recipe, extra = next(run for start, run in FRAGMENT_RUNS.items() if code.lstrip().startswith(start))
        name = f'fragment_{block.line}.py'
        run_ok(self.ws, f'vlmtune copy-cfg {recipe} {name}')
        with open(self.ws / name, 'a') as handle:
            handle.write('\n# README.md line %d\n%s\n' % (block.line, code))
        run_ok(self.ws, f'vlmtune train {name} --data data/food_train.jsonl --images FoodieQA {extra} --iters 2 '
                        f'--cfg-options train_dataloader.num_workers=0')
        assert (self.ws / 'work_dirs' / name[:-3] / 'iter_2.pth').exists()


@pytest.fixture(scope='module')
def walk(ws):
    walker = Walk(ws)
    yield walker
    walker.stop_server()


@pytest.mark.parametrize('block', BLOCKS, ids=lambda b: f'line{b.line}-{b.lang or "listing"}')
def test_readme_block_runs_as_written(walk, block):
    try:
        if block.lang == 'bash':
            found = commands(block)
            assert found, f'README line {block.line}: a bash block without a command'
            for command in found:
                walk.run(command)
        elif block.lang == 'python':
            walk.fragment(block)
        else:  # the source tree: every path it names exists
            named = [text.split()[0] for _, text in block.body if text.strip() and '/' in text.split()[0]]
            assert named and all((REPO / path.split(',')[0]).exists() for path in named), named
    finally:
        walk.stop_server()


def test_every_block_is_walked():
    """The walk covers what README.md has: a new block is walked with no test edit, in a known way."""
    kinds = {(b.lang or 'listing') for b in BLOCKS}
    assert kinds <= {'bash', 'python', 'listing'}, kinds
    fragments = [b for b in BLOCKS if b.lang == 'python']
    starts = ['\n'.join(t for _, t in b.body).lstrip() for b in fragments]
    assert all(any(s.startswith(k) for k in FRAGMENT_RUNS) for s in starts), starts
    texts = [c.text for b in BLOCKS if b.lang == 'bash' for c in commands(b)]
    for table in (RUN_ELSEWHERE, GPU_ONLY, SERVERS):
        assert all(any(t.startswith(prefix) for t in texts) for prefix in table), table  # no stale entries
    print(f'\nREADME.md: {len(BLOCKS)} blocks, {len(texts)} commands, {len(fragments)} recipe fragments; '
          f'run elsewhere: {sorted(RUN_ELSEWHERE)}; GPU-only: {sorted(GPU_ONLY)}')
