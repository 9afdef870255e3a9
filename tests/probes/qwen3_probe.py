"""Run in a subprocess with a side env (transformers >= 4.51) first on PYTHONPATH: load Qwen3 /
Qwen3-MoE folders with transformers' own classes while `vlmtune` cannot be imported.

    python qwen3_probe.py JOB.pt OUTPUT.pt

JOB: `runs`, one dict per folder: `folder`, `inputs` (input_ids, attention_mask: left padded,
labels), `new_tokens` (greedy, cached generation). OUTPUT per run: logits, loss, aux_loss (MoE),
generated ids and per-step scores, missing/unexpected keys, the class that loaded it, the version.
"""
import sys

import hide_vlmtune  # noqa: F401  (first: vlmtune cannot be imported from here on)

import torch  # noqa: E402
import transformers  # noqa: E402


def main(job_path, out_path):
    job = torch.load(job_path, weights_only=False)
    results = []
    for run in job['runs']:
        model, info = transformers.AutoModelForCausalLM.from_pretrained(run['folder'], output_loading_info=True,
                                                                        torch_dtype=torch.float32)
        model.eval()
        inputs = run['inputs']
        extra = {'output_router_logits': True} if hasattr(model.config, 'num_experts') else {}
        with torch.no_grad():
            out = model(**inputs, **extra)
            gen = model.generate(input_ids=inputs['input_ids'], attention_mask=inputs['attention_mask'],
                                 max_new_tokens=run['new_tokens'], do_sample=False, use_cache=True,
                                 return_dict_in_generate=True, output_scores=True, pad_token_id=0)
        results.append({'logits': out.logits, 'loss': out.loss, 'aux_loss': getattr(out, 'aux_loss', None),
                        'sequences': gen.sequences, 'scores': torch.stack(gen.scores, 1),
                        'missing': list(info['missing_keys']), 'unexpected': list(info['unexpected_keys']),
                        'class': type(model).__name__, 'version': transformers.__version__})
    torch.save(results, out_path)


if __name__ == '__main__':
    main(*sys.argv[1:3])
