"""Zero-shot classification with an NLI model, mirroring
``Bumblebee.Text.zero_shot_classification/4``.

Each item is one text. It is paired with one hypothesis per label ("This
example is sports.") and the NLI model scores every pair; the labels'
entailment logits, softmaxed across labels, are their scores. The result is
``%{predictions: [%{label: String.t(), score: float}]}``, the ``top_k`` best,
highest first.

Options:

* ``labels`` - the candidate labels (required).
* ``hypotheses`` - one hypothesis per label, in the same order. The Elixir
  side builds them with the user's ``:hypothesis_template`` function, which
  cannot cross the wire. Defaults to ``"This example is <label>."``, which is
  Bumblebee's default template.
* ``top_k`` - defaults to 5; capped at the number of labels.
* ``sequence_length`` - the compiled length(s), see :mod:`py_bridge.tasks._text`.

Requires a ``:for_sequence_classification`` model whose labels include one
named "entailment" (any case).

Bumblebee tokenizes the pairs without token type ids, so for BERT-style NLI
models the hypothesis is read as part of the first segment. Here the pairs are
tokenized as the model's tokenizer does by default (as transformers'
zero-shot pipeline does), which is how such models were trained. For RoBERTa,
BART and DeBERTa-v3 NLI models, which have no segment embeddings, the two agree.
"""

from __future__ import annotations

from typing import Any

from py_bridge.errors import BadInputError, BridgeError, UnsupportedError
from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._text import TextTask, Tokenized, int_option, parse_text, string_list_option
from py_bridge.tasks.base import BatchContext, ItemResult, validate_each
from py_bridge.tasks.text_classification import labels_of, top_predictions

_PREDICTIONS = Atom("predictions")


class ZeroShotClassification(TextTask):
    """Ranks candidate labels by how strongly the text entails each hypothesis."""

    name = "zero_shot_classification"
    architectures = ("for_sequence_classification",)

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        labels = string_list_option(options, "labels", None)
        if not labels:
            raise BadInputError("expected :labels to be a non-empty list of strings")
        hypotheses = string_list_option(options, "hypotheses", None) or [f"This example is {x}." for x in labels]
        if len(hypotheses) != len(labels):
            raise BadInputError(f"expected one hypothesis per label, got {len(hypotheses)} for {len(labels)} labels")
        self.candidates = labels
        self.hypotheses = hypotheses
        self.top_k = int_option(options, "top_k", 5)
        super().__init__(model, options)
        model_labels = labels_of(self.model, self.hf_model)
        entailment = [i for i, name in model_labels.items() if name.lower() == "entailment"]
        if not entailment:
            raise UnsupportedError('expected model specification to include "entailment" label in :id_to_label')
        self.entailment_id = entailment[0]

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        good, texts, results = validate_each(items, parse_text)
        width = len(self.hypotheses)
        pairs = [(text, hypothesis) for text in texts for hypothesis in self.hypotheses]
        # Cut the text, never the hypothesis: without it the pair means nothing.
        tokenized = self.encoder.tokenize(pairs, truncation="only_first")
        ready: list[tuple[int, list[Tokenized]]] = []
        for n, index in enumerate(good):
            row = tokenized[n * width : (n + 1) * width]
            pairs_ok = [t for t in row if isinstance(t, Tokenized)]
            if len(pairs_ok) == width:
                ready.append((index, pairs_ok))
            else:
                # Every label is needed for the softmax: one failed pair fails the text.
                results[index] = next(t for t in row if isinstance(t, BridgeError))
        if not ready:
            return results
        inputs = self.encoder.collate([t for _, row in ready for t in row], self.device)
        logits = self.forward(inputs).logits.float()[:, self.entailment_id].reshape(len(ready), width)
        labels = dict(enumerate(self.candidates))
        for (index, _), scores in zip(ready, logits.softmax(dim=-1), strict=True):
            results[index] = {_PREDICTIONS: top_predictions(scores, self.top_k, labels)}
        return results


TASK = ZeroShotClassification
