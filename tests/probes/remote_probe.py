"""Run in a subprocess: load a saved folder with plain transformers + trust_remote_code while
`vlmtune` cannot be imported, then compute logits for given inputs and a two-turn greedy chat.

    python remote_probe.py FOLDER INPUTS.pt OUTPUT.pt [FOLDER INPUTS.pt OUTPUT.pt ...]

Several folders share one interpreter (importing torch + transformers is most of a probe's cost).
A folder that fails gets {'error': traceback} as its output and the exit status is 1.
"""
import json
import sys
import traceback

import hide_vlmtune  # noqa: F401  (first: vlmtune cannot be imported from here on)

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402


def main(folder, inputs_path, output_path):
    inputs = torch.load(inputs_path, weights_only=False)
    # transformers >= 4.56 renamed `torch_dtype` to `dtype` (the old name is a deprecated property).
    renamed = isinstance(getattr(transformers.PretrainedConfig, 'torch_dtype', None), property)
    dtype_kw = {'dtype' if renamed else 'torch_dtype': torch.float32}
    model = AutoModel.from_pretrained(folder, trust_remote_code=True, **dtype_kw).eval()
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
                'chat_template_ids': tokenizer(prompt).input_ids,
                'transformers_version': transformers.__version__,
                'vlmtune_imported': any(m.startswith('vlmtune') for m in sys.modules)}, output_path)
    print(json.dumps({'answers': [answer1, answer2], 'transformers': transformers.__version__}))


if __name__ == '__main__':
    args = sys.argv[1:]
    failed = False
    for i in range(0, len(args), 3):
        try:
            main(*args[i:i + 3])
        except Exception:  # record it and go on with the next folder
            traceback.print_exc()
            torch.save({'error': traceback.format_exc()}, args[i + 2])
            failed = True
    sys.exit(1 if failed else 0)
