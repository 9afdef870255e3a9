"""Tables and charts of benchmark results: one run as markdown, several side by side (`compare`)."""
import json
from pathlib import Path

COUNTS = {'n', 'questions', 'passes', 'images', 'subtasks'}


def fmt(name: str, value, scale='fraction') -> str:
    if value is None:
        return '-'
    if name in COUNTS or isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f'{100 * value:.1f}%' if scale == 'fraction' else f'{value:.2f}'


def _table(header, rows) -> list:
    return ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)] + ['| ' + ' | '.join(r) + ' |' for r in rows]


def markdown_table(result: dict) -> str:
    scale = result.get('scale', 'fraction')
    lines = [f"## {result['benchmark']}: {Path(result['file']).name}", '']
    if result.get('model'):
        lines += [f"model: `{result['model']}`", '']
    lines += _table(['metric', 'value'], [[f'**{k}**' if k == result['headline'] else k, fmt(k, v, scale)]
                                          for k, v in result['metrics'].items()])
    unanswered = result['unanswered']
    lines += ['', f"questions asked: {result['questions_asked']}; unanswered (no answer could be read): "
                  f"{unanswered} ({100 * unanswered / result['questions_asked']:.1f}%), counted wrong"]
    lines += [f'note: {note}' for note in result.get('notes', [])]
    if result.get('breakdown'):
        columns = list(dict.fromkeys(key for group in result['breakdown'].values() for key in group))
        lines += ['', '### breakdown', '']
        lines += _table(['group'] + columns, [[name] + [fmt(c, group.get(c), scale) for c in columns]
                                              for name, group in result['breakdown'].items()])
    return '\n'.join(lines) + '\n'


def read_results(paths) -> list:
    results = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            path = path / 'results.json'
        try:
            result = json.loads(path.read_text(encoding='utf-8'))
        except FileNotFoundError:
            raise FileNotFoundError(f'{path}: no such results file (vlmtune eval --bench writes results.json)') from None
        if 'benchmark' not in result or 'metrics' not in result:
            raise ValueError(f'{path}: not a vlmtune eval --bench results.json')
        results.append(result)
    return results


def compare_table(results, labels) -> str:
    """One row per (benchmark, metric), one column per run ('-' where a run has no such result), and the
    change from the first run that has it to the last."""
    rows = []
    for bench in dict.fromkeys(r['benchmark'] for r in results):
        first = next(r for r in results if r['benchmark'] == bench)
        scale = first.get('scale', 'fraction')
        for metric, value in first['metrics'].items():
            if metric in COUNTS or not isinstance(value, (int, float)):
                continue
            values = [r['metrics'].get(metric) if r['benchmark'] == bench else None for r in results]
            present = [v for v in values if isinstance(v, (int, float))]
            change = '-'
            if len(present) > 1:
                delta = present[-1] - present[0]
                change = ('+' if delta >= 0 else '-') + fmt(metric, abs(delta), scale)
            label = f'**{metric}**' if metric == first['headline'] else metric
            rows.append([bench, label] + [fmt(metric, v, scale) for v in values] + [change])
    return '\n'.join(_table(['benchmark', 'metric'] + list(labels) + ['change'], rows)) + '\n'


def compare_chart(results, labels, path) -> Path:
    """One panel per benchmark: its (non-count) metrics as grouped bars, one colour per run."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    benches = list(dict.fromkeys(r['benchmark'] for r in results))
    fig, axes = plt.subplots(1, len(benches), figsize=(4.5 * len(benches), 3.8), squeeze=False)
    for ax, bench in zip(axes[0], benches):
        runs = [(r, lab) for r, lab in zip(results, labels) if r['benchmark'] == bench]
        metrics = [m for m, v in runs[0][0]['metrics'].items() if m not in COUNTS and isinstance(v, (int, float))]
        scale = runs[0][0].get('scale', 'fraction')
        width = 0.8 / len(runs)
        for i, (run, label) in enumerate(runs):
            values = [(run['metrics'].get(m) or 0) * (100 if scale == 'fraction' else 1) for m in metrics]
            bars = ax.bar([j + i * width for j in range(len(metrics))], values, width, label=label)
            ax.bar_label(bars, fmt='%.1f', fontsize=7)
        ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(metrics))])
        ax.set_xticklabels(metrics, rotation=20, ha='right', fontsize=8)
        ax.set_title(bench)
        ax.set_ylabel('%' if scale == 'fraction' else 'score')
        ax.grid(axis='y', alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp.png')
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def compare(paths, out_dir, labels=None) -> dict:
    results = read_results(paths)
    labels = list(labels) if labels else [Path(p).parent.name if Path(p).name == 'results.json' else Path(p).name
                                          for p in map(str, paths)]
    if len(labels) != len(results):
        raise ValueError(f'{len(labels)} labels for {len(results)} results files')
    from ..files import write_text
    table = compare_table(results, labels)
    out_dir = Path(out_dir)
    return {'table': table, 'markdown': write_text(out_dir / 'compare.md', table),
            'chart': compare_chart(results, labels, out_dir / 'compare.png')}
