"""Qwen3-Reranker scoring, mirroring ``Bumblebee.Text.text_reranking_qwen3/3``.

Each item is a ``{query, document}`` pair. It is written into the reranker's
prompt, which asks whether the document meets the query and leaves the answer
to the model; the score is the probability of "yes" against "no" at the last
position, ``softmax([logit(no), logit(yes)])[1]``, in ``[0, 1]``. The result of
one item is ``%{score: float, query: String.t(), document: String.t()}``; the
Elixir side wraps it in ``%{scores: ...}`` as Bumblebee does (a single map for
one pair, a map holding the list for a list of pairs).

Options (as Bumblebee's; ``nil`` means the default):

* ``yes_token``, ``no_token`` - token ids of the two answers. By default the
  first token of "yes" and "no" in the tokenizer.
* ``instruction_prefix``, ``instruction_suffix`` - the prompt around the
  content; the defaults are Qwen3-Reranker's chat markup.
* ``task_description`` - the ``<Instruct>`` line. Defaults to web-search retrieval.
* ``sequence_length`` - the compiled length(s), see :mod:`py_bridge.tasks._text`.

The prompt is ``prefix <> "<Instruct>: task\\n<Query>: q\\n<Document>: d" <> suffix``.
When it is longer than the model takes, the middle (query and document) is
cut and the prefix and suffix kept whole, as the Qwen3-Reranker model card
does: cutting the end would cut off the question the model answers.

Requires a ``:for_causal_language_modeling`` model. Left and right padding
both work: the last *attended* position is read either way.
"""

from __future__ import annotations

from typing import Any

from py_bridge.errors import BadInputError, BridgeError
from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._text import TextTask, Tokenized, parse_pair, text_option
from py_bridge.tasks.base import BatchContext, ItemResult, validate_each

DEFAULT_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
DEFAULT_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_TASK = "Given a web search query, retrieve relevant passages that answer the query"

_SCORE, _QUERY, _DOCUMENT = Atom("score"), Atom("query"), Atom("document")


class TextRerankingQwen3(TextTask):
    """Scores how well each document answers its query, as P("yes")."""

    name = "text_reranking_qwen3"
    architectures = ("for_causal_language_modeling",)

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        self.prefix = text_option(options, "instruction_prefix", DEFAULT_PREFIX) or ""
        self.suffix = text_option(options, "instruction_suffix", DEFAULT_SUFFIX) or ""
        self.task_description = text_option(options, "task_description", DEFAULT_TASK) or ""
        super().__init__(model, options)
        self.yes_id = self._token_option(options, "yes_token", "yes")
        self.no_id = self._token_option(options, "no_token", "no")
        self._prefix_ids = self.tokenizer(self.prefix, add_special_tokens=False)["input_ids"]
        self._suffix_ids = self.tokenizer(self.suffix, add_special_tokens=False)["input_ids"]

    def _token_option(self, options: dict[str, Any], name: str, word: str) -> int:
        value = options.get(name)
        if value is None:
            ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
            if not ids:
                raise BadInputError(f"cannot infer :{name}: {word!r} has no tokens; pass the id explicitly")
            return int(ids[0])
        vocab_size = self.hf_model.get_output_embeddings().weight.shape[0]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab_size:
            raise BadInputError(f"expected :{name} to be a token id below {vocab_size}, got: {value!r}")
        return value

    def content(self, query: str, document: str) -> str:
        return f"<Instruct>: {self.task_description}\n<Query>: {query}\n<Document>: {document}"

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        good, pairs, results = validate_each(items, parse_pair)
        tokenized = [self._tokenize(query, document) for query, document in pairs]
        ready = [(i, p, t) for i, p, t in zip(good, pairs, tokenized, strict=True) if not isinstance(t, BridgeError)]
        for i, t in zip(good, tokenized, strict=True):
            if isinstance(t, BridgeError):
                results[i] = t
        if not ready:
            return results
        inputs = self.encoder.collate([t for _, _, t in ready], self.device)
        logits = self.forward(inputs).logits
        mask = inputs["attention_mask"]
        positions = mask.shape[1] - 1 - mask.flip(dims=[1]).argmax(dim=1)  # the last attended position
        last = logits[range(logits.shape[0]), positions].float()
        yes_no = last[:, [self.no_id, self.yes_id]].log_softmax(dim=-1)[:, 1].exp()
        for (index, (query, document), _), score in zip(ready, yes_no.tolist(), strict=True):
            results[index] = {_SCORE: score, _QUERY: query, _DOCUMENT: document}
        return results

    def _tokenize(self, query: str, document: str) -> Tokenized | BridgeError:
        """The prompt's tokens; when too long, the content is cut and prefix and suffix kept."""
        limit = self.encoder.max_length
        text = f"{self.prefix}{self.content(query, document)}{self.suffix}"
        ids = self.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"]
        if limit is None or len(ids) <= limit:
            return Tokenized(input_ids=ids)
        room = limit - len(self._prefix_ids) - len(self._suffix_ids)
        if room <= 0:
            return BadInputError(f"the reranker prompt alone is longer than the model's limit of {limit} tokens")
        content = self.tokenizer(self.content(query, document), add_special_tokens=False)["input_ids"][:room]
        return Tokenized(input_ids=self._prefix_ids + content + self._suffix_ids)


TASK = TextRerankingQwen3
