"""Run in a subprocess: load a saved folder with plain transformers + trust_remote_code while
`vlmtune` cannot be imported, then compute logits for given inputs and a two-turn greedy chat.

    python remote_probe.py FOLDER INPUTS.pt OUTPUT.pt
"""
import importlib.abc
import json
import sys


class BlockVlmtune(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'vlmtune' or name.startswith('vlmtune.'):
            raise ImportError('vlmtune is hidden in this probe')
        return None


sys.meta_path.insert(0, BlockVlmtune())
sys.path = [p for p in sys.path if p not in ('', '.')]

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402


def main(folder, inputs_path, output_path):
    inputs = torch.load(inputs_path, weights_only=False)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True, torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True, use_fast=False)
    model.img_context_token_id = tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>')
    with torch.no_grad():
        logits = model(pixel_values=inputs['pixel_values'], input_ids=inputs['input_ids'],
                       attention_mask=inputs['attention_mask'], image_flags=inputs['image_flags']).logits
    gen = dict(max_new_tokens=inputs['max_new_tokens'], do_sample=False)
    answer1, history = model.chat(tokenizer, inputs['chat_pixel_values'], inputs['questions'][0], gen,
                                  history=None, return_history=True)
    answer2, history = model.chat(tokenizer, inputs['chat_pixel_values'], inputs['questions'][1], gen,
                                  history=history, return_history=True)
    prompt = tokenizer.apply_chat_template(inputs['messages'], tokenize=False, add_generation_prompt=True)
    torch.save({'logits': logits, 'answers': [answer1, answer2], 'chat_template_prompt': prompt,
                'transformers_version': transformers.__version__,
                'vlmtune_imported': any(m.startswith('vlmtune') for m in sys.modules)}, output_path)
    print(json.dumps({'answers': [answer1, answer2], 'transformers': transformers.__version__}))


if __name__ == '__main__':
    main(*sys.argv[1:4])
