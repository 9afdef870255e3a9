"""Teacher-forced scores of a model on conversation data: the mean loss and next-token accuracy over the
trained (answer) tokens, the finer-grained number beside generated-answer accuracy (the validation hook, the
MoE expert-load hook and the embedded default's report use it)."""
import torch


@torch.no_grad()
def teacher_forced_scores(model, dataset, limit=None, batch_size=4) -> dict:
    """Mean loss and next-token accuracy over the trained (answer) tokens of a ConversationDataset."""
    from ..data.collate import pad_collate
    count = len(dataset) if limit is None else min(len(dataset), limit)
    was_training = model.training
    model.eval()
    loss_sum, tokens, correct = 0.0, 0, 0
    for start in range(0, count, batch_size):
        batch = pad_collate([dataset[i] for i in range(start, min(start + batch_size, count))], 0)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        if batch['pixel_values'].is_floating_point():  # uint8 tiles (the training loader's): the model normalises
            batch['pixel_values'] = batch['pixel_values'].to(model.dtype)
        logits = model(**{k: v for k, v in batch.items() if k != 'labels'}).logits.float()[:, :-1]
        labels = batch['labels'][:, 1:]
        mask = labels != -100
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction='none')
        loss_sum += float(losses[mask].sum())
        tokens += int(mask.sum())
        correct += int((logits.argmax(-1) == labels)[mask].sum())
    model.train(was_training)
    return {'loss': loss_sum / max(tokens, 1), 'token_accuracy': correct / max(tokens, 1), 'tokens': tokens}


def answer_token_accuracy(model_path, data_path, image_root=None) -> dict:
    from ..data.dataset import ConversationDataset
    from ..formats import load
    model, tokenizer = load(model_path)
    dataset = ConversationDataset(data_path, image_root, model.spec.data_spec(tokenizer), progress=False)
    return teacher_forced_scores(model, dataset)
