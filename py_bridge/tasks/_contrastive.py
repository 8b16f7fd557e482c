"""Contrastive search, which ``transformers`` 5 only offers as a hub download.

Bumblebee's ``%{type: :contrastive_search, top_k: k, alpha: a}`` picks, at
each step, the candidate among the ``k`` most probable tokens that maximises

    (1 - a) * p(token) - a * max_j cos(h(token), h_j)

where ``h(token)`` is the last hidden state the model computes for the
candidate and ``h_j`` the hidden states of the sequence so far. The loop here
follows Bumblebee's: one model pass scores all ``k`` candidates of every row
at once on a cache repeated ``k`` times, and the cache rows of the chosen
candidates are kept. Padding positions of a left-padded prompt are left out of
the similarity, so a prompt gives the same text alone or in a batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from py_bridge.tasks._generate import GenerationSettings


def _processors(settings: GenerationSettings, kwargs: dict[str, Any], extra: Any, prefix: int, device: Any) -> Any:
    """The logits processors ``generate`` would apply, in Bumblebee's order."""
    from transformers import (
        ForcedBOSTokenLogitsProcessor,
        ForcedEOSTokenLogitsProcessor,
        LogitsProcessorList,
        MinNewTokensLengthLogitsProcessor,
        NoRepeatNGramLogitsProcessor,
        SuppressTokensLogitsProcessor,
        TemperatureLogitsWarper,
    )

    processors = LogitsProcessorList()
    if kwargs.get("no_repeat_ngram_size"):
        processors.append(NoRepeatNGramLogitsProcessor(kwargs["no_repeat_ngram_size"]))
    if kwargs.get("min_new_tokens") and settings.eos_token_ids:
        processors.append(
            MinNewTokensLengthLogitsProcessor(prefix, kwargs["min_new_tokens"], settings.eos_token_ids, device)
        )
    if settings.suppressed_token_ids:
        processors.append(SuppressTokensLogitsProcessor(settings.suppressed_token_ids, device))
    if settings.forced_bos_token_id is not None:
        processors.append(ForcedBOSTokenLogitsProcessor(settings.forced_bos_token_id))
    if settings.forced_eos_token_id is not None:
        processors.append(
            ForcedEOSTokenLogitsProcessor(prefix + kwargs["max_new_tokens"], settings.forced_eos_token_id, device)
        )
    processors.extend(extra)
    if settings.temperature is not None and settings.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(settings.temperature))
    return processors


def contrastive_search(
    model: Any,
    inputs: dict[str, Any],
    settings: GenerationSettings,
    kwargs: dict[str, Any],
    extra_processors: Any,
    is_cancelled: Callable[[], bool],
    streamer: Any = None,
) -> Any:
    """Generate with contrastive search; returns the sequences, prefix included.

    ``inputs`` holds ``input_ids`` and ``attention_mask`` (left-padded), plus
    ``decoder_input_ids`` for an encoder-decoder model. Finished rows are
    filled with the pad id, as ``generate`` fills them.
    """
    import torch
    import torch.nn.functional as F

    top_k, alpha = int(settings.top_k or 1), float(settings.alpha or 0.0)
    # Without a pad or EOS id no row ever finishes, so the filler never shows.
    pad = settings.pad_id()
    pad = 0 if pad is None else pad
    eos = torch.tensor(settings.eos_token_ids, dtype=torch.long, device=model.device)
    encoder_decoder = bool(model.config.is_encoder_decoder)
    batch = inputs["input_ids"].shape[0]
    # transformers 5 renamed the cache argument; older 5.x releases know only the old name.
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    if encoder_decoder:
        encoder_mask = inputs["attention_mask"]
        encoder_state = model.get_encoder()(
            input_ids=inputs["input_ids"], attention_mask=encoder_mask, return_dict=True
        ).last_hidden_state
        sequences = inputs["decoder_input_ids"]
        context_mask = torch.ones_like(sequences, dtype=torch.bool)

        def forward(ids: Any, cache: Any, repeat: int) -> tuple[Any, Any]:
            out = model(
                encoder_outputs=(encoder_state.repeat_interleave(repeat, 0),),
                attention_mask=encoder_mask.repeat_interleave(repeat, 0),
                decoder_input_ids=ids,
                use_cache=True,
                output_hidden_states=True,
                return_dict=True,
                **{cache_arg: cache},
            )
            return out, out.decoder_hidden_states[-1]

    else:
        mask = inputs["attention_mask"]
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        sequences = inputs["input_ids"]
        context_mask = mask.bool()
        takes_positions = "position_ids" in inspect.signature(model.forward).parameters

        def forward(ids: Any, cache: Any, repeat: int) -> tuple[Any, Any]:
            length = ids.shape[1]
            extra = {"position_ids": positions[:, -length:].repeat_interleave(repeat, 0)} if takes_positions else {}
            out = model(
                input_ids=ids,
                attention_mask=mask.repeat_interleave(repeat, 0),
                use_cache=True,
                output_hidden_states=True,
                return_dict=True,
                **{cache_arg: cache},
                **extra,
            )
            return out, out.hidden_states[-1]

    prefix = sequences.shape[1]
    processors = _processors(settings, kwargs, extra_processors, prefix, model.device)
    out, context = forward(sequences, None, 1)
    cache, logits = _cache_of(out), out.logits[:, -1, :]
    unfinished = torch.ones(batch, dtype=torch.bool, device=model.device)
    rows = torch.arange(batch, device=model.device) * top_k
    if streamer is not None:
        streamer.put(sequences.cpu())
    for _ in range(kwargs["max_new_tokens"]):
        probabilities = processors(sequences, logits.float()).softmax(-1)
        top_probabilities, top_ids = probabilities.topk(top_k, dim=-1)
        # Every candidate of every row is scored in one pass over a repeated cache.
        if not encoder_decoder:
            mask = torch.cat([mask, mask.new_ones((batch, 1))], dim=-1)
            positions = torch.cat([positions, positions[:, -1:] + 1], dim=-1)
        cache.batch_repeat_interleave(top_k)
        out, hidden = forward(top_ids.reshape(-1, 1), cache, top_k)
        candidates = hidden[:, -1, :].reshape(batch, top_k, -1)
        similarity = torch.einsum("bkd,bld->bkl", F.normalize(candidates, dim=-1), F.normalize(context, dim=-1))
        penalty = similarity.masked_fill(~context_mask[:, None, :], -float("inf")).amax(-1)
        best = ((1.0 - alpha) * top_probabilities - alpha * penalty).argmax(-1)
        chosen = rows + best
        cache = _cache_of(out)
        cache.batch_select_indices(chosen)
        token = top_ids.gather(1, best[:, None]).squeeze(1)
        token = torch.where(unfinished, token, torch.full_like(token, pad))
        sequences = torch.cat([sequences, token[:, None]], dim=-1)
        context = torch.cat([context, candidates.gather(1, best[:, None, None].expand(-1, 1, candidates.shape[-1]))], 1)
        context_mask = torch.cat([context_mask, context_mask.new_ones((batch, 1))], dim=-1)
        logits = out.logits[chosen, -1, :]
        if streamer is not None:
            streamer.put(token.cpu())
        if eos.numel():
            unfinished &= ~torch.isin(token, eos)
        if not unfinished.any() or is_cancelled():
            break
    if streamer is not None:
        streamer.end()
    return sequences


def _cache_of(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
