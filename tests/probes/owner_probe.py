"""Run in a subprocess (vlmtune hidden; a side environment first on PYTHONPATH where the owner is a newer
transformers): load each folder with its layout owner's own code and compute logits on given inputs.

    python owner_probe.py JOB.pt OUTPUT.pt

JOB: a list of runs {'folder', 'loader', 'inputs'}; loader: 'remote' (AutoModel, trust_remote_code: the
internvl layout's remote code), 'remote_causal_lm' (AutoModelForCausalLM, trust_remote_code: composite),
or a transformers class name (LlavaForConditionalGeneration, ..., AutoModelForImageTextToText).
OUTPUT per run: {'logits', 'class', 'missing_keys' (the unexpected ones too, marked), 'transformers'} or
{'error': traceback}."""
import sys
import traceback

import hide_vlmtune  # noqa: F401  (first: vlmtune cannot be imported from here on)

import torch  # noqa: E402
import transformers  # noqa: E402


def load(folder, loader):
    if loader == 'remote':  # the official model card: set the image context token id from the tokenizer
        model = transformers.AutoModel.from_pretrained(folder, trust_remote_code=True, torch_dtype=torch.float32)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True, use_fast=False)
        model.img_context_token_id = tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>')
        return model, []
    if loader == 'remote_causal_lm':
        return transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True), []
    model, info = getattr(transformers, loader).from_pretrained(folder, output_loading_info=True)
    return model, sorted(info['missing_keys']) + [f'unexpected: {key}' for key in sorted(info['unexpected_keys'])]


def main(job_path, out_path):
    results = []
    for run in torch.load(job_path, weights_only=False):
        try:
            model, missing = load(run['folder'], run['loader'])
            with torch.no_grad():
                logits = model.eval().float()(**run['inputs']).logits
            results.append({'logits': logits.float(), 'class': type(model).__name__, 'missing_keys': missing,
                            'transformers': transformers.__version__})
        except Exception:  # record it and go on with the next folder
            results.append({'error': traceback.format_exc()})
    results.append({'vlmtune_imported': any(m.startswith('vlmtune') for m in sys.modules)})
    torch.save(results, out_path)


if __name__ == '__main__':
    main(*sys.argv[1:3])
