"""Extractive question answering, mirroring ``Bumblebee.Text.question_answering/3``.

Each item is ``%{question: String.t(), context: String.t()}``; its result is
``%{results: [%{text:, start:, end:, score:}]}`` with exactly one answer:
``text`` is a span of the context, ``start``/``end`` its UTF-8 **byte**
offsets into the context, and ``score`` the product of the start and end
probabilities.

transformers 5 removed its question-answering pipeline, so the span is decoded
here from the model's start and end logits:

1. the question and context are tokenized as a pair, truncating only the
   context (a question that leaves no room for context fails alone);
2. start and end probabilities are a softmax over the item's own tokens
   (never the padding its batch added, so a score does not depend on what it
   was batched with);
3. the answer is the span ``i <= j`` of context tokens with the highest
   ``p_start[i] * p_end[j]``.

Bumblebee takes the two argmaxes independently, over every position. Where
those land on a valid context span (as they do for a trained model) the answer
is the same; where they do not, Bumblebee's span is meaningless and this one
is still the best valid span.

Options: ``sequence_length`` (see :mod:`py_bridge.tasks._text`). Requires a
``:for_question_answering`` model.
"""

from __future__ import annotations

from typing import Any

from py_bridge.errors import BadInputError
from py_bridge.etf import Atom
from py_bridge.tasks._text import TextTask, Tokenized, byte_offsets
from py_bridge.tasks.base import BatchContext, ItemResult, as_text

_RESULTS = Atom("results")
_TEXT, _START, _END, _SCORE = Atom("text"), Atom("start"), Atom("end"), Atom("score")


def parse_question(item: Any) -> tuple[str, str]:
    """An item ``%{question: text, context: text}`` as ``(question, context)``."""
    if not isinstance(item, dict) or "question" not in item or "context" not in item:
        got = f"a map with keys {sorted(map(str, item))}" if isinstance(item, dict) else type(item).__name__
        raise BadInputError(f"expected input map with :question and :context keys, got: {got}")
    return as_text(item["question"], ":question"), as_text(item["context"], ":context")


class QuestionAnswering(TextTask):
    """Finds the span of the context that answers the question."""

    name = "question_answering"
    architectures = ("for_question_answering",)

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        return self.run_texts(
            items, parse_question, lambda pair: pair, self._answer, truncation="only_second", details=True
        )

    def _answer(
        self, pairs: list[tuple[str, str]], tokens: list[Tokenized], inputs: dict[str, Any]
    ) -> list[ItemResult]:
        output = self.forward(inputs)
        starts, ends = output.start_logits.float().cpu(), output.end_logits.float().cpu()
        left = self.tokenizer.padding_side == "left"
        results: list[ItemResult] = []
        for row, ((_, context), item) in enumerate(zip(pairs, tokens, strict=True)):
            first = starts.shape[1] - len(item) if left else 0
            own = slice(first, first + len(item))
            results.append(_best_span(context, item, starts[row, own].softmax(-1), ends[row, own].softmax(-1)))
        return results


def _best_span(context: str, item: Tokenized, p_start: Any, p_end: Any) -> ItemResult:
    """The context span with the highest ``p_start[i] * p_end[j]``, ``i <= j``."""
    assert item.sequence_ids is not None and item.offsets is not None
    in_context = [i for i, s in enumerate(item.sequence_ids) if s == 1]
    if not in_context:
        return BadInputError("the context has no tokens (it is empty, or the question fills the model's input)")
    starts, ends = p_start.tolist(), p_end.tolist()
    # One pass: the best start so far pairs with each end. Context tokens are
    # contiguous, so "so far" means "at or before this end".
    best = (-1.0, 0, 0)
    best_start = in_context[0]
    for j in in_context:
        if starts[j] > starts[best_start]:
            best_start = j
        score = starts[best_start] * ends[j]
        if score > best[0]:
            best = (score, best_start, j)
    score, i, j = best
    char_start, char_end = item.offsets[i][0], item.offsets[j][1]
    (start, _), (_, end) = byte_offsets(context, [item.offsets[i], item.offsets[j]])
    return {_RESULTS: [{_TEXT: context[char_start:char_end], _START: start, _END: end, _SCORE: score}]}


TASK = QuestionAnswering
