"""Run in a subprocess with a side env (a newer transformers) first on PYTHONPATH: load llava-hf /
llava-next-hf folders with transformers' own classes while `vlmtune` cannot be imported.

    python llava_probe.py JOB.pt OUTPUT.pt

JOB: `runs`, one dict per folder: `folder`, `arch` (class name), `inputs` (model kwargs),
`save_to` (save_pretrained there), `pad_image` (optional: pixel values of
`LlavaImageProcessor.from_pretrained`). A model built from the config and given the loaded weights is
saved to `save_to + '-fresh'` (the names a version saves for its own models; a loaded folder is
re-saved under its original names).
OUTPUT per run: logits, missing/unexpected keys, and the pad pixels or the error.
"""
import sys

import hide_vlmtune  # noqa: F401  (first: vlmtune cannot be imported from here on)

import torch  # noqa: E402
import transformers  # noqa: E402


def main(job_path, out_path):
    job = torch.load(job_path, weights_only=False)
    results = []
    for run in job['runs']:
        model, info = getattr(transformers, run['arch']).from_pretrained(run['folder'], output_loading_info=True)
        with torch.no_grad():
            logits = model.eval()(**run['inputs']).logits
        model.save_pretrained(run['save_to'])
        fresh = type(model)(model.config)
        fresh.load_state_dict(model.state_dict())
        fresh.save_pretrained(run['save_to'] + '-fresh')
        result = {'logits': logits, 'missing': list(info['missing_keys']), 'unexpected': list(info['unexpected_keys']),
                  'version': transformers.__version__}
        if run.get('pad_image') is not None:
            processor = transformers.LlavaImageProcessor.from_pretrained(run['folder'])
            result['pad_pixels'] = processor(run['pad_image'], return_tensors='pt')['pixel_values']
        results.append(result)
    torch.save(results, out_path)


if __name__ == '__main__':
    main(*sys.argv[1:3])
