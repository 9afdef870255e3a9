"""Reading README.md as a user does: its fenced blocks, the commands in them, and the one table of stand-ins
the README walk substitutes for what a user brings (their data, their released folders, the names they pick).

Every block is one of: `bash` (each command runs, comments and continuations as bash reads them), `python`
(a recipe fragment: appended to a copy of a shipped recipe that then trains), or an untagged listing (the
source tree: prose, checked to name existing paths)."""
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r'^```(\w*)\s*$')
HEREDOC = re.compile(r"<<'(\w+)'")


@dataclass
class Block:
    line: int      # the README line of its opening fence
    lang: str      # bash | python | '' (a listing)
    body: list     # (line, text) pairs


@dataclass
class Command:
    line: int
    text: str      # as the README has it, comments dropped and continuations joined

    @property
    def words(self) -> list:
        return shlex.split(self.text.split('\n', 1)[0])


def blocks(readme: Path) -> list:
    found, current = [], None
    for number, text in enumerate(readme.read_text(encoding='utf-8').splitlines(), 1):
        fence = FENCE.match(text)
        if fence and current is None:
            current = Block(number, fence.group(1), [])
        elif fence:
            found.append(current)
            current = None
        elif current is not None:
            current.body.append((number, text))
    assert current is None, f'README.md: the block opened at line {current.line} is never closed'
    return found


def commands(block: Block) -> list:
    """The commands of a bash block: a comment-only line is prose; `\\` joins lines; a heredoc is one command."""
    found, pending, lines = [], None, iter(block.body)
    for number, text in lines:
        if pending is None and (not text.strip() or text.lstrip().startswith('#')):
            continue
        words = shlex.split(text, comments=True) if not text.rstrip().endswith('\\') else None
        heredoc = HEREDOC.search(text)
        if heredoc:  # everything to the terminator, verbatim
            body = [text]
            for _, more in lines:
                body.append(more)
                if more.strip() == heredoc.group(1):
                    break
            found.append(Command(number, '\n'.join(body)))
            continue
        if words is None:
            pending = pending or Command(number, '')
            pending.text += text.rstrip()[:-1].strip() + ' '
            continue
        if pending is not None:
            pending.text += shlex.join(words)
            found.append(pending)
            pending = None
        else:
            found.append(Command(number, shlex.join(words)))
    assert pending is None, f'README.md line {pending.line}: a continued command never ends'
    return [Command(c.line, c.text.strip()) for c in found]


# What a user brings, as the walk's stand-ins: (pattern, replacement) on each command's text, in order. `{line}`
# is the command's README line (a fresh output name per command, as a user picks one).
SUBSTITUTIONS = [
    (r" ?'?\[WORK_DIR\]'?", ''),                                      # optional argument left out
    (r'(?<=--vision-tower )\.\.\.', 'models/clip-vit-large-patch14-336'),  # "the same as stage 1"
    (r'(?<=--llm )\.\.\.', 'models/vicuna-7b-v1.5'),
    (r'(?<![\w/])FILE\b', 'data/food_train.jsonl'),
    (r'(?<![\w/])DIR\b', 'FoodieQA'),
    (r'(?<![\w/])FOLDER\b', 'models/InternVL2-2B-food'),
    (r'(?<![\w/])OUT\b', 'models/converted-{line}'),
    (r'/tmp/mmb\b', 'mmb'),                                        # the README's scratch folder, kept in the walk's
    (r'(?<![\w/])MMBench_DEV_EN\.tsv', 'data/MMBench_DEV_EN.tsv'),  # the benchmark file, where a user keeps it
    (r'data/general\.jsonl', 'data/food_val.jsonl'),             # a general set beside the domain's
    (r'"general_images"', '"FoodieQA"'),
]
ITER_N = re.compile(r'(\S+)/iter_N\.pth')
FAST_TRAIN = ['--iters', '2', '--cfg-options', 'train_dataloader.num_workers=0']  # every training, shortened


def substitute(command: Command, workspace: Path) -> str:
    text = command.text
    for pattern, replacement in SUBSTITUTIONS:
        text = re.sub(pattern, replacement.format(line=command.line), text)
    text = ITER_N.sub(lambda m: last_checkpoint(workspace, m.group(1)), text)
    if command.words[:2] == ['vlmtune', 'train']:
        text += ' ' + shlex.join(FAST_TRAIN)
    return text


def last_checkpoint(workspace: Path, work_dir: str) -> str:
    found = sorted((workspace / work_dir).glob('iter_*.pth'), key=lambda p: int(p.stem.split('_')[1]))
    assert found, f'{work_dir}: no iter_*.pth (the training before this command did not save one)'
    return str(found[-1].relative_to(workspace))
