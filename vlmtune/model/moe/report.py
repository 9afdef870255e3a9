"""Expert load per MoE layer (from a validation pass) as JSON and a PNG heatmap, and the parameters a
token activates against the total."""
import json
from contextlib import contextmanager
from pathlib import Path

from .block import moe_blocks


@contextmanager
def counting_expert_load(llm):
    """Within: every MoE layer sums the tokens each expert runs on (reset on entry)."""
    blocks = [block for _, block in moe_blocks(llm)]
    for block in blocks:
        block.load.zero_()
        block.counting = True
    try:
        yield
    finally:
        for block in blocks:
            block.counting = False


def load_table(llm) -> dict:
    rows = [(index, block.load.tolist()) for index, block in moe_blocks(llm)]
    return {'layers': [i for i, _ in rows], 'tokens_per_expert': [c for _, c in rows],
            'fraction_per_expert': [[n / max(sum(c), 1) for n in c] for _, c in rows]}


def parameter_summary(llm) -> dict:
    """Total LLM parameters and those one token runs through (k of E experts in each MoE layer)."""
    total = sum(p.numel() for p in llm.parameters())
    idle = 0
    for _, block in moe_blocks(llm):
        per_expert = sum(p.numel() for p in block.experts[0].parameters())
        idle += (block.num_experts - block.top_k) * per_expert
    return {'total': total, 'active_per_token': total - idle, 'active_fraction': (total - idle) / total}


def write_load_report(table: dict, params: dict, out_dir) -> tuple:
    """-> (expert_load.json, expert_load.png) in out_dir."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    out = Path(out_dir)
    json_path, png_path = out / 'expert_load.json', out / 'expert_load.png'
    json_path.write_text(json.dumps({**table, 'parameters': params}, indent=1))
    fractions = table['fraction_per_expert']
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 + 0.8 * len(fractions[0])), 1.6 + 0.45 * len(fractions)))
    image = ax.imshow(fractions, cmap='viridis', vmin=0, aspect='auto')
    ax.set_xticks(range(len(fractions[0])))
    ax.set_yticks(range(len(fractions)), [f'layer {i}' for i in table['layers']])
    ax.set_xlabel('expert')
    top = max(max(row) for row in fractions)
    for row, values in enumerate(fractions):
        for col, value in enumerate(values):
            ax.text(col, row, f'{value:.2f}', ha='center', va='center', fontsize=9,
                    color='k' if value > 0.6 * top else 'w')
    fig.colorbar(image, ax=ax, label='share of routed tokens')
    ax.set_title(f"expert load per MoE layer\nactive {params['active_per_token']:,} of {params['total']:,} "
                 f"LLM parameters per token", fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return json_path, png_path
