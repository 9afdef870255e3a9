"""Run in a subprocess: load composite folders with transformers alone (vlmtune hidden).

    python composite_probe.py JOB.pt OUTPUT.pt

JOB: `runs`, one dict per folder: `folder`, `inputs` (input_ids, pixel_values, attention_mask), `image`
(a PIL image for the folder's image processor). OUTPUT per run: logits, the processor's pixels, the
class names, greedy ids, or the error."""
import sys
import traceback

import hide_vlmtune  # noqa: F401  (first: vlmtune cannot be imported from here on)

import torch  # noqa: E402
import transformers  # noqa: E402


def main(job_path, out_path):
    results = []
    for run in torch.load(job_path, weights_only=False)['runs']:
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(run['folder'], trust_remote_code=True).eval()
            processor = transformers.AutoImageProcessor.from_pretrained(run['folder'])
            with torch.no_grad():
                logits = model(**run['inputs']).logits
                generated = model.generate(**run['inputs'], max_new_tokens=3, do_sample=False)
            results.append({'logits': logits, 'generated': generated, 'model': type(model).__name__,
                            'llm': type(model.language_model).__name__, 'processor': type(processor).__name__,
                            'pixels': processor(run['image'], return_tensors='pt')['pixel_values']})
        except Exception:  # record it and go on with the next folder
            results.append({'error': traceback.format_exc()})
    torch.save(results, out_path)


if __name__ == '__main__':
    main(*sys.argv[1:3])
