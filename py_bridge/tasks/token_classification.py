"""Token classification (NER), mirroring ``Bumblebee.Text.token_classification/3``.

Each item is one text; its result is ``%{entities: [entity]}`` where an entity
is ``%{start:, end:, label:, score:, phrase:}``. ``start`` and ``end`` are
UTF-8 **byte** offsets into the text, as in Bumblebee (the tokenizer counts
code points; they are converted).

Options (as Bumblebee's):

* ``aggregation`` - how tokens become entities:
  * ``nil`` (the default): one entity per token; ``label`` keeps its BIO
    prefix ("B-PER") and ``phrase`` is the raw token ("##ing").
  * ``:same``: adjacent tokens with the same label (a "B-" starts a new
    entity) are grouped.
  * ``:word_first``, ``:word_average``, ``:word_max``: first every token of
    a word takes one label, from the word's first token, from the average of
    its tokens' scores, or from its highest-scoring token; then as ``:same``.
  Grouped entities drop the BIO prefix, score the mean over their tokens and
  decode their tokens into ``phrase``.
* ``ignored_labels`` - labels (without prefix) to leave out. Defaults to ``["O"]``.
* ``scores_function`` - ``:softmax`` (the default), ``:sigmoid`` or ``:none``.
* ``sequence_length`` - the compiled length(s), see :mod:`py_bridge.tasks._text`.

Requires a ``:for_token_classification`` model.

Two deliberate differences from Bumblebee 0.7, both where its result is
accidental rather than designed:

* Words are found with the tokenizer's word ids. Bumblebee guesses that a
  token continues a word when its text is longer than its span (true for
  WordPiece "##" pieces), which also marks ``[UNK]`` and byte-level BPE tokens
  as word pieces. The two agree on WordPiece text without unknown words.
* ``:word_max`` takes the label of the word's highest-scoring token (as
  transformers' ``"max"`` does). Bumblebee compares the tokens' label indices
  instead of their scores.
"""

from __future__ import annotations

from typing import Any

from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._text import (
    TextTask,
    Tokenized,
    byte_offsets,
    choice_option,
    parse_text,
    string_list_option,
)
from py_bridge.tasks.base import BatchContext, ItemResult
from py_bridge.tasks.text_classification import SCORES_FUNCTIONS, apply_scores_function, labels_of

AGGREGATIONS = (None, "same", "word_first", "word_average", "word_max")

_ENTITIES = Atom("entities")
_START, _END, _LABEL, _SCORE, _PHRASE = (Atom(k) for k in ("start", "end", "label", "score", "phrase"))


class TokenClassification(TextTask):
    """Labels every token, then groups tokens into entities."""

    name = "token_classification"
    architectures = ("for_token_classification",)

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        self.aggregation = choice_option(options, "aggregation", AGGREGATIONS, None)
        self.ignored_labels = set(string_list_option(options, "ignored_labels", ["O"]) or [])
        self.scores_function = choice_option(options, "scores_function", SCORES_FUNCTIONS, "softmax")
        super().__init__(model, options)
        self.labels = labels_of(self.model, self.hf_model)

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        return self.run_texts(items, parse_text, lambda text: text, self._entities, details=True)

    def _entities(self, texts: list[str], tokens: list[Tokenized], inputs: dict[str, Any]) -> list[ItemResult]:
        scores = apply_scores_function(self.forward(inputs).logits.float(), self.scores_function).cpu()
        left = self.tokenizer.padding_side == "left"
        width = scores.shape[1]
        results = []
        for row, (text, item) in enumerate(zip(texts, tokens, strict=True)):
            first = width - len(item) if left else 0
            item_scores = scores[row, first : first + len(item)]
            labelled = self._tokens(text, item, item_scores)
            if self.aggregation in ("word_first", "word_average", "word_max"):
                labelled = _relabel_words(labelled, self.aggregation, self.labels)
            if self.aggregation is not None:
                entities = self._group(labelled)
            else:
                entities = [_entity(t["start"], t["end"], t["label"], t["score"], t["token"]) for t in labelled]
            kept = [e for e in entities if _split_label(e[_LABEL])[1] not in self.ignored_labels]
            results.append({_ENTITIES: kept})
        return results

    def _tokens(self, text: str, item: Tokenized, scores: Any) -> list[dict[str, Any]]:
        """One record per non-special token: its id, text, byte span, word and scores."""
        assert item.offsets is not None and item.special_tokens_mask is not None and item.word_ids is not None
        spans = byte_offsets(text, item.offsets)
        best_scores, best = scores.max(dim=-1)
        out = []
        for i, token_id in enumerate(item.input_ids):
            if item.special_tokens_mask[i]:
                continue
            index = int(best[i])
            out.append(
                {
                    "id": token_id,
                    "token": self.tokenizer.convert_ids_to_tokens(token_id),
                    "start": spans[i][0],
                    "end": spans[i][1],
                    "word": item.word_ids[i],
                    "scores": scores[i],
                    "label": self.labels.get(index, f"LABEL_{index}"),
                    "score": float(best_scores[i]),
                }
            )
        return out

    def _group(self, tokens: list[dict[str, Any]]) -> list[dict[Atom, Any]]:
        """Join runs of tokens into entities: a token joins the previous one when
        it is "I-" (or unprefixed) of the same entity type."""
        groups: list[list[dict[str, Any]]] = []
        for token in tokens:
            prefix, kind = _split_label(token["label"])
            if groups and prefix == "I" and kind == _split_label(groups[-1][0]["label"])[1]:
                groups[-1].append(token)
            else:
                groups.append([token])
        return [
            _entity(
                group[0]["start"],
                group[-1]["end"],
                _split_label(group[0]["label"])[1],
                sum(t["score"] for t in group) / len(group),
                self.tokenizer.decode([t["id"] for t in group]),
            )
            for group in groups
        ]


def _relabel_words(tokens: list[dict[str, Any]], strategy: str, labels: dict[int, str]) -> list[dict[str, Any]]:
    """Give every token of a word the word's label and score.

    The word's first token keeps the chosen label as is; the others get its
    "I-" form, so that grouping keeps a word in one entity.
    """
    import torch

    words: list[list[dict[str, Any]]] = []
    for token in tokens:
        if words and token["word"] is not None and token["word"] == words[-1][-1]["word"]:
            words[-1].append(token)
        else:
            words.append([token])
    out = []
    for word in words:
        if strategy == "word_first":
            scores = word[0]["scores"]
        elif strategy == "word_average":
            scores = torch.stack([t["scores"] for t in word]).mean(dim=0)
        else:
            scores = max(word, key=lambda t: t["score"])["scores"]
        index = int(scores.argmax())
        label = labels.get(index, f"LABEL_{index}")
        for position, token in enumerate(word):
            prefix, kind = _split_label(label)
            own = label if position == 0 or prefix != "B" else f"I-{kind}"
            out.append({**token, "label": own, "score": float(scores[index])})
    return out


def _split_label(label: str) -> tuple[str, str]:
    """BIO prefix and entity type: "B-PER" -> ("B", "PER"); "O" -> ("I", "O") as Bumblebee reads it."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _entity(start: int, end: int, label: str, score: float, phrase: str) -> dict[Atom, Any]:
    return {_START: start, _END: end, _LABEL: label, _SCORE: score, _PHRASE: phrase}


TASK = TokenClassification
