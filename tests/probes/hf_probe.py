"""Run in a subprocess with a side env first on PYTHONPATH: load an -hf InternVL folder with
transformers' own classes while `vlmtune` cannot be imported, and report what they compute.

    python hf_probe.py JOB.pt OUTPUT.pt

JOB: `runs`, one dict per folder: `folder`, `texts` (tokenizer ids), `inputs` (probe_inputs: logits,
a two-turn greedy chat with the processor's chat template, the template's rendering of `messages`),
`sep`, `save_to` (save_pretrained there, report the keys), `also_load` (logits of a second folder),
`image`/`question` (processor ids and pixel values for one image); plus `pixel_folder` and
`pixel_cases` (each image processor class of this version against reference tiles).
"""
import json
import sys

import hide_vlmtune  # noqa: F401  (first: vlmtune cannot be imported from here on)

import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor  # noqa: E402

V5 = int(transformers.__version__.split('.')[0]) >= 5


def load_model(folder):
    return AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()


def expand(processor, text, tiles):
    """The processor's own image expansion for pixel values we pass in directly."""
    block = processor.start_image_token + processor.image_token * processor.image_seq_length * tiles \
        + processor.end_image_token
    return text.replace(processor.image_token, block)


def chat(model, processor, pixel_values, questions, max_new_tokens, sep):
    """Two greedy turns, history re-sent, like the official `chat()`."""
    messages, answers = [], []
    for i, question in enumerate(questions):
        content = [{'type': 'image'}, {'type': 'text', 'text': question}] if i == 0 else question
        messages.append({'role': 'user', 'content': content})
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        enc = processor.tokenizer(expand(processor, prompt, pixel_values.shape[0]), return_tensors='pt')
        with torch.no_grad():
            out = model.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                 pixel_values=pixel_values, max_new_tokens=max_new_tokens, do_sample=False)
        text = processor.tokenizer.decode(out[0, enc.input_ids.shape[1]:], skip_special_tokens=True)
        answers.append(text.split(sep)[0].strip())
        messages.append({'role': 'assistant', 'content': answers[-1]})
    return answers


def pixel_parity(folder, cases, grid_cases):
    """Per image processor class: tiles, grid and max |pixels - reference| per case; tiles and grid
    (no pixels) for `grid_cases` (width, height, max_num)."""
    from transformers.models.got_ocr2 import image_processing_got_ocr2 as got
    variants = {'torchvision': {'backend': 'torchvision'}, 'pil': {'backend': 'pil'}} if V5 else \
        {'fast': {'use_fast': True}, 'slow': {'use_fast': False}}
    results = {}
    for name, kwargs in variants.items():
        proc = AutoImageProcessor.from_pretrained(folder, **kwargs)
        rows = []
        for case in cases:
            image = Image.open(case['image']).convert('RGB')
            out = proc(images=[image], max_patches=case['max_num'], return_tensors='pt')
            pixels, ref = out['pixel_values'], case['reference']
            grid = got.get_optimal_tiled_canvas((image.height, image.width), (proc.size['height'],
                                                proc.size['width']), proc.min_patches, case['max_num'])
            diff = (pixels - ref).abs().max().item() if pixels.shape == ref.shape else None
            rows.append({'size': image.size, 'max_num': case['max_num'], 'tiles': int(pixels.shape[0]),
                         'grid': tuple(grid), 'max_abs_diff': diff,
                         'share_off': None if diff is None else ((pixels - ref).abs() > 1e-5).float().mean().item()})
        grids = [{'size': (w, h), 'max_num': n, 'tiles': proc.get_number_of_image_patches(h, w, {'max_patches': n}),
                  'grid': tuple(got.get_optimal_tiled_canvas((h, w), (proc.size['height'], proc.size['width']),
                                                             proc.min_patches, n))}
                 for w, h, n in grid_cases]
        results[name] = {'class': type(proc).__name__, 'rows': rows, 'grids': grids}
    return results


def run_folder(job):
    folder, result = job['folder'], {}
    processor = AutoProcessor.from_pretrained(folder)
    result['processor_classes'] = [type(processor).__name__, type(processor.image_processor).__name__,
                                   type(processor.tokenizer).__name__]
    result['tokenizer_ids'] = {text: processor.tokenizer(text).input_ids for text in job.get('texts', [])}
    if 'inputs' in job:
        inputs = job['inputs']
        try:
            model = load_model(folder)
            with torch.no_grad():
                result['logits'] = model(input_ids=inputs['input_ids'], attention_mask=inputs['attention_mask'],
                                         pixel_values=inputs['pixel_values']).logits
        except Exception as exc:  # reported, so a test can assert a known limitation; the processor is still run
            result['error'] = f'{type(exc).__name__}: {exc}'
            model = None
    if 'inputs' in job and model is not None:
        result['answers'] = chat(model, processor, inputs['chat_pixel_values'], inputs['questions'],
                                 inputs['max_new_tokens'], job['sep'])
        result['chat_template_prompt'] = processor.apply_chat_template(inputs['messages'], tokenize=False,
                                                                        add_generation_prompt=True)
        if job.get('save_to'):
            model.save_pretrained(job['save_to'])
            from safetensors import safe_open
            with safe_open(f"{job['save_to']}/model.safetensors", framework='pt') as handle:
                result['saved_keys'] = sorted(handle.keys())
        if job.get('also_load'):  # another layout of the same weights: must give the same logits
            other = load_model(job['also_load'])
            with torch.no_grad():
                result['also_load_logits'] = other(input_ids=inputs['input_ids'],
                                                   attention_mask=inputs['attention_mask'],
                                                   pixel_values=inputs['pixel_values']).logits
    if 'image' in job:
        image = Image.open(job['image']).convert('RGB')
        messages = [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': job['question']}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        enc = processor(text=prompt, images=[image], return_tensors='pt')
        result['image_prompt'] = prompt
        # (a PIL image: 5.24 reads a path with torchvision's decoder, which the CPU side env lacks)
        with_image = [{'role': 'user', 'content': [{'type': 'image', 'image': image},
                                                   {'type': 'text', 'text': job['question']}]}]
        result['chat_template_input_ids'] = processor.apply_chat_template(
            with_image, add_generation_prompt=True, tokenize=True, return_dict=True)['input_ids'][0]
        result['chat_template_input_ids'] = list(map(int, result['chat_template_input_ids']))
        result['image_input_ids'] = enc['input_ids'][0].tolist()
        result['image_pixel_values'] = enc['pixel_values']
        if V5:  # 5.x picks the image processor backend at load time only (and has no PIL video processor)
            pil = AutoProcessor.from_pretrained(folder)
            pil.image_processor = AutoImageProcessor.from_pretrained(folder, backend='pil')
            result['image_pixel_values_pil'] = pil(text=prompt, images=[image], return_tensors='pt')['pixel_values']
    return result


def main(job_path, output_path):
    job = torch.load(job_path, weights_only=False)
    result = {'transformers_version': transformers.__version__,
              'vlmtune_imported': any(m.startswith('vlmtune') for m in sys.modules)}
    result['runs'] = [run_folder(run) for run in job.get('runs', [])]
    if 'pixel_cases' in job:
        result['pixels'] = pixel_parity(job['pixel_folder'], job['pixel_cases'], job.get('grid_cases', []))
    result['vlmtune_imported'] = result['vlmtune_imported'] or any(m.startswith('vlmtune') for m in sys.modules)
    torch.save(result, output_path)
    print(json.dumps({'transformers': transformers.__version__, 'runs': len(result['runs'])}))


if __name__ == '__main__':
    main(*sys.argv[1:3])
