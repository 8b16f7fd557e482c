"""Independent reference values for the Elixir tests, as one ETF term on stdout.

The Elixir suites compare what a PyBridge serving returns with what the
Python libraries compute directly: sentence-transformers for embeddings,
``transformers`` for classification. Nothing here goes through
``py_bridge.tasks``, so a bug there cannot hide in its own reference.

Usage (stdout carries exactly one term in the External Term Format)::

    python tests/reference.py embedding --model DIR TEXT...
        -> [[float]]                               one list per text
    python tests/reference.py classification --model DIR --top-k K TEXT...
        -> [[%{label: String.t(), score: float}]]   top K per text, highest first

In Elixir: ``:erlang.binary_to_term(output)``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

log = logging.getLogger("reference")


def embeddings(model_dir: str, texts: list[str]) -> list[list[float]]:
    """sentence-transformers' ``encode``, exactly as a user would call it.

    A plain transformers directory (no ``modules.json``) gets
    sentence-transformers' default: mean pooling, no normalization.
    """
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    return model.encode(texts, convert_to_numpy=True).astype("float64").tolist()


def classifications(model_dir: str, texts: list[str], top_k: int) -> list[list[dict[Any, Any]]]:
    """Softmax over each text's logits, one text at a time (no padding), top ``top_k``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from py_bridge.etf import Atom

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    results = []
    for text in texts:
        with torch.no_grad():
            inputs = tokenizer(text, return_tensors="pt", truncation=True)
            scores = model(**inputs).logits[0].softmax(-1).tolist()
        ranked = sorted(enumerate(scores), key=lambda pair: -pair[1])[:top_k]
        results.append(
            [{Atom("label"): model.config.id2label.get(i, f"LABEL_{i}"), Atom("score"): s} for i, s in ranked]
        )
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    embedding = commands.add_parser("embedding", help="sentence-transformers embeddings")
    embedding.add_argument("--model", required=True)
    embedding.add_argument("texts", nargs="+")
    classification = commands.add_parser("classification", help="sequence classification scores")
    classification.add_argument("--model", required=True)
    classification.add_argument("--top-k", type=int, default=5)
    classification.add_argument("texts", nargs="+")
    args = parser.parse_args(argv)

    from py_bridge.etf import encode

    # Whatever a library prints (from Python or C) must not end up inside the
    # term: keep a private copy of fd 1 for the result and point fd 1 at stderr.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with contextlib.redirect_stdout(sys.stderr):
        if args.command == "embedding":
            term: Any = embeddings(args.model, args.texts)
        else:
            term = classifications(args.model, args.texts, args.top_k)
    with out:
        out.write(encode(term))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main(sys.argv[1:]))
