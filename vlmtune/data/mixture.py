"""A meta file's sources as one training dataset: each source's rows selected by its repeat_time (data/meta.py),
read with its own settings (JPEG augmentation, tile budget), concatenated in the file's order. `lengths` spans the
whole mixture, so the length-grouped sampler and packing mix sources as they mix rows."""
from typing import List

from torch.utils.data import Dataset

from .dataset import ConversationDataset
from .meta import MetaSource


class MixtureDataset(Dataset):
    def __init__(self, sources: List[MetaSource], datasets: List[ConversationDataset]):
        self.sources, self.datasets = sources, datasets
        self.items, self.lengths, self.rejects, self.counts = [], [], [], []
        for k, (source, dataset) in enumerate(zip(sources, datasets)):
            length_of = dict(zip(dataset.indices, dataset.lengths))
            selected = source.selection(dataset.num_rows())
            kept = [i for i in selected if i in length_of]
            self.items += [(k, i) for i in kept]
            self.lengths += [length_of[i] for i in kept]
            chosen = set(selected)
            rejects = [r for r in dataset.rejects if r['row'] - 1 in chosen]
            self.rejects += [{**r, 'source': source.name, 'file': str(source.annotation)} for r in rejects]
            self.counts.append({'source': source.name, 'rows': dataset.num_rows(), 'repeat_time': source.repeat_time,
                                'selected': len(selected), 'trained': len(kept), 'rejected': len(rejects)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        source, row = self.items[index]
        return self.datasets[source].item(row)

    def summary(self) -> str:
        """One line per source: rows in the file, the repeat, samples trained, rows rejected."""
        lines = [f'  {c["source"]}: {c["rows"]} rows x repeat_time {c["repeat_time"]} -> {c["trained"]} samples'
                 + (f' ({c["rejected"]} row(s) rejected)' if c['rejected'] else '') for c in self.counts]
        return f'meta file: {len(self)} samples from {len(self.counts)} sources\n' + '\n'.join(lines)
