"""TinyLLaVA Factory's conversation templates (its `data/template/`): LLaVA's Vicuna form with the LLM's own
end-of-sequence token, `{system} USER: <image>\\n{q} ASSISTANT: {a}{EOS}` (generation prompt ends `ASSISTANT:`),
tokenized LLaVA's way (pieces between images each with the tokenizer's specials, BOS kept once).

The label rule is TinyLLaVA's `make_labels`, which accounts for whether the tokenizer adds a BOS
(b = 1 for Gemma / Llama, 0 for Phi-2 / StableLM): the first b tokens are masked; per round (the prompt split
at EOS, each round at ' ASSISTANT: '), round_len = len(round) + 1 - b (its EOS, less the BOS tokenizing it
alone adds) and instruction_len = len(question + ' ASSISTANT: ') - 1 - b (less the BOS and the trailing space,
which merges into the answer's first token in the whole prompt); the answer and its EOS are trained. A sample
whose arithmetic does not reach the prompt's length is masked whole, as TinyLLaVA does. Each family file
registers its template (gemma.py, phi.py) with its EOS."""
from dataclasses import dataclass
from typing import Sequence

from ..image.tokens import IMAGE_TAG, LLAVA_ADDED, LLAVA_IMAGE
from ..rejects import IGNORE_INDEX
from .base import adds_bos
from .llava import VICUNA_SYSTEM, VicunaTemplate, close_rounds, tokenize_with_images


@dataclass(frozen=True)
class TinyLlavaTemplate(VicunaTemplate):
    def tokenize(self, tokenizer, messages: Sequence[dict], system_message: str = None, image: str = IMAGE_TAG):
        prompt = self.render(messages, system_message)
        ids = tokenize_with_images(tokenizer, prompt, image)
        bos = int(adds_bos(tokenizer))
        labels = list(ids)
        labels[:bos] = [IGNORE_INDEX] * bos
        cur = bos
        for round_text in prompt.split(self.end_token):
            if round_text == '':
                break
            parts = round_text.split(self.round_sep)
            if len(parts) != 2:
                break
            round_len = len(tokenize_with_images(tokenizer, round_text, image)) + 1 - bos
            instruction_len = len(tokenize_with_images(tokenizer, parts[0] + self.round_sep, image)) - 1 - bos
            labels[cur:cur + instruction_len] = [IGNORE_INDEX] * len(labels[cur:cur + instruction_len])
            cur += round_len
        return close_rounds(ids, labels, cur, self.name, 'TinyLLaVA make_labels')


def tinyllava_template(name: str, eos: str) -> TinyLlavaTemplate:
    """TinyLLaVA's template `name` ending each answer with the LLM's `eos`."""
    return TinyLlavaTemplate(name, '', VICUNA_SYSTEM, ('USER: ', 'ASSISTANT: '), ' ', sep2=eos, stop_tokens=(eos,),
                             open_role='ASSISTANT:', image_tokens=LLAVA_IMAGE, added_tokens=LLAVA_ADDED,
                             special_tokens=(eos,))
