"""Sequence log-probs of a preference batch (data.preference_collate): the sum over each answer's supervised tokens of
log-softmax(logits) at the label, one position shifted (the official `get_batch_logps`); `mean=True` divides by the
answer's token count (what `ipo` uses). Rows may be padded on either side (positions count each row's own
tokens). The pair's images are encoded once and their embedding spliced into both
halves (the official trainer repeats the tiles and encodes them twice); the LM head runs on supervised positions
only. Also returns the NLL that rpo_alpha weighs: the token mean over every supervised chosen token."""
import torch
import torch.nn.functional as F


def pair_image_embeddings(model, batch: dict) -> torch.Tensor:
    """The pairs' image embedding, once: [tokens, width] in sample order."""
    return model.image_embeddings(batch['pixel_values'], batch['image_flags'], batch.get('image_sizes'))


def sequence_logps(model, batch: dict, mean: bool = False, share_images: bool = True, image=None) -> tuple:
    """(chosen logps [B], rejected logps [B], chosen NLL). share_images=False repeats the tiles for the rejected half
    instead, as the official trainer does (the same numbers, twice the vision work). image: the pairs' embedding
    when the caller has it (a frozen tower and connector give the reference the policy's)."""
    pairs = batch['input_ids'].shape[0] // 2
    if image is not None or share_images:
        image = pair_image_embeddings(model, batch) if image is None else image
        image = torch.cat([image, image])
    else:
        image = model.image_embeddings(torch.cat([batch['pixel_values']] * 2), torch.cat([batch['image_flags']] * 2),
                                       None if batch.get('image_sizes') is None else torch.cat([batch['image_sizes']] * 2))
    embeds = model.splice(batch['input_ids'], image)
    mask = batch['attention_mask']
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # left padding too: each row's tokens count from 0
    hidden = model.llm.get_decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                     use_cache=False).last_hidden_state
    targets = batch['labels'][:, 1:].to(hidden.device)
    trained = targets != -100
    logits = model.spec.component('llm').logits(model.llm, hidden[:, :-1][trained]).float()
    token_logps = torch.gather(F.log_softmax(logits, -1), 1, targets[trained][:, None])[:, 0]
    rows = torch.arange(targets.shape[0], device=hidden.device)[:, None].expand_as(targets)[trained]
    sums = torch.zeros(targets.shape[0], device=hidden.device).index_add(0, rows, token_logps)
    if mean:
        sums = sums / trained.sum(1).clamp(min=1)
    chosen_tokens = rows < pairs
    nll = -token_logps[chosen_tokens].mean()
    return sums[:pairs], sums[pairs:], nll
