"""`vlmtune data check --meta FILE`: every row of every source of a meta file checked (data/check.py, each source
with its own image root and tile budget), then one table: rows, kept, rejected, and what the source trains after
its repeat_time."""
from typing import Callable, List, Optional

from .check import CheckConfig, CheckReport, check_file
from .meta import MetaSource, read_meta


def check_meta(meta_path, cfg: CheckConfig, length_fn_for: Optional[Callable[[MetaSource], Callable]] = None,
               progress: bool = True) -> List[tuple]:
    """[(source, report)]; length_fn_for(source) -> the token-length function for that source (or None)."""
    results = []
    for source in read_meta(meta_path):
        length_fn = length_fn_for(source) if length_fn_for else None
        results.append((source, check_file(source.annotation, source.root, cfg, token_length_fn=length_fn,
                                           progress=progress)))
    return results


def check_meta_files(meta_path, cfg: CheckConfig, model=None, max_tiles=None, progress=True) -> tuple:
    """Check and print every source, then the table; (kept, rejected) over all sources. With a model folder, rows
    are also measured in tokens, each source at its own tile budget."""
    def length_fn_for(source):
        from ..formats import data_spec_for_folder
        spec = data_spec_for_folder(model, source.max_dynamic_patch or max_tiles, cfg.max_length)
        return spec.length_fn(source.root, cfg.max_length)
    results = check_meta(meta_path, cfg, length_fn_for if model else None, progress)
    for _, report in results:
        print(report.summary())
    print(meta_summary(meta_path, results))
    return sum(r.kept for _, r in results), sum(r.rejected for _, r in results)


def meta_summary(meta_path, results: List[tuple]) -> str:
    lines = [f'data check --meta {meta_path}: {len(results)} sources',
             f'  {"source":<24}{"rows":>8}{"kept":>8}{"rejected":>10}{"repeat":>8}{"trains":>8}']
    for source, report in results:
        lines.append(f'  {source.name:<24}{report.total:>8}{report.kept:>8}{report.rejected:>10}'
                     f'{source.repeat_time:>8g}{trained(source, report):>8}')
    total = sum(r.total for _, r in results), sum(r.kept for _, r in results), sum(r.rejected for _, r in results)
    lines.append(f'  {"all":<24}{total[0]:>8}{total[1]:>8}{total[2]:>10}{"":>8}'
                 f'{sum(trained(s, r) for s, r in results):>8}')
    return '\n'.join(lines)


def trained(source: MetaSource, report: CheckReport) -> int:
    """Samples the source trains: its repeat_time's selection of the rows, less the rejected ones among them."""
    rejected = set(report.rejected_rows)
    return sum(1 for i in source.selection(report.total) if i not in rejected)
