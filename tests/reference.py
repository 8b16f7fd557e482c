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
    python tests/reference.py token_classification --model DIR [--aggregation none|simple|first|average|max]
                              [--ignore O,...] TEXT...
        -> [[%{start:, end:, label:, score:, phrase:}]]  entities per text, byte offsets
    python tests/reference.py fill_mask --model DIR --top-k K TEXT...
        -> [[%{token: String.t(), score: float}]]
    python tests/reference.py question_answering --model DIR QUESTION CONTEXT [QUESTION CONTEXT...]
        -> [%{text:, start:, end:, score:}]           the best span per pair, byte offsets
    python tests/reference.py zero_shot --model DIR --label L... [--template "It is {}."] --top-k K TEXT...
        -> [[%{label: String.t(), score: float}]]
    python tests/reference.py cross_encoding --model DIR TEXT TEXT [TEXT TEXT...]
        -> [float]                                     the raw logit per pair
    python tests/reference.py rerank --model DIR [--task T] QUERY DOCUMENT [QUERY DOCUMENT...]
        -> [%{score:, query:, document:}]              Qwen3-Reranker P("yes") per pair
    python tests/reference.py token_ids --model DIR TOKEN...
        -> [integer]                                   vocabulary ids
    python tests/reference.py generation --model DIR [--max-new-tokens N] [--source L --target L] TEXT...
        -> [%{text:, input:, output:}]                 greedy model.generate on each text alone
    python tests/reference.py image_classification --model DIR --top-k K IMAGE...
        -> [[%{label: String.t(), score: float}]]     IMAGE is a file or raw:HxWxC:FILE (u8 bytes)
    python tests/reference.py image_embedding --model DIR [--output pooler_output] [--l2-norm] IMAGE...
        -> [[float] | [[float]]]                      that model output, per image
    python tests/reference.py image_to_text --model DIR [--max-new-tokens N] IMAGE...
        -> [String.t()]                               BLIP's greedy caption per image
    python tests/reference.py whisper --model DIR [--max-new-tokens N] [--language L] [--task T|none]
                              [--window SECONDS] AUDIO...
        -> [[String.t()]]                             one text per window; AUDIO is a file or raw:FILE (f32le)

Several commands separated by ``---`` run in one process (torch is imported
once) and give a list with one term per command.

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


def _top_labels(scores: list[float], id2label: dict[int, str], top_k: int) -> list[dict[Any, Any]]:
    """The ``top_k`` best labels, highest score first, as Bumblebee names them."""
    from py_bridge.etf import Atom

    ranked = sorted(enumerate(scores), key=lambda pair: -pair[1])[:top_k]
    return [{Atom("label"): id2label.get(i, f"LABEL_{i}"), Atom("score"): s} for i, s in ranked]


def classifications(model_dir: str, texts: list[str], top_k: int) -> list[list[dict[Any, Any]]]:
    """Softmax over each text's logits, one text at a time (no padding), top ``top_k``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    results = []
    for text in texts:
        with torch.no_grad():
            inputs = tokenizer(text, return_tensors="pt", truncation=True)
            scores = model(**inputs).logits[0].softmax(-1).tolist()
        results.append(_top_labels(scores, model.config.id2label, top_k))
    return results


def _byte_offset(text: str, char_offset: int) -> int:
    return len(text[:char_offset].encode("utf-8"))


def _pairs(values: list[str]) -> list[tuple[str, str]]:
    if len(values) % 2:
        raise SystemExit(f"expected pairs of texts, got {len(values)} texts")
    return list(zip(values[::2], values[1::2], strict=True))


def token_classifications(model_dir: str, texts: list[str], aggregation: str, ignore: list[str]) -> list[list[Any]]:
    """transformers' token-classification pipeline; character offsets turned into UTF-8 bytes.

    ``aggregation`` is the pipeline's strategy name: "none", "simple", "first",
    "average" or "max" (Bumblebee's nil, :same, :word_first, :word_average, :word_max).
    """
    from transformers import pipeline

    from py_bridge.etf import Atom

    pipe = pipeline("token-classification", model=model_dir, device="cpu")
    results = []
    for text in texts:
        # The pipeline refuses an empty text; Bumblebee finds no entities in it.
        found = pipe(text, aggregation_strategy=aggregation, ignore_labels=ignore) if text else []
        results.append(
            [
                {
                    Atom("start"): _byte_offset(text, e["start"]),
                    Atom("end"): _byte_offset(text, e["end"]),
                    Atom("label"): e.get("entity_group", e.get("entity")),
                    Atom("score"): float(e["score"]),
                    Atom("phrase"): e["word"],
                }
                for e in found
            ]
        )
    return results


def fill_masks(model_dir: str, texts: list[str], top_k: int) -> list[list[Any]]:
    """transformers' fill-mask pipeline, tokens with leading whitespace trimmed."""
    from transformers import pipeline

    from py_bridge.etf import Atom

    pipe = pipeline("fill-mask", model=model_dir, device="cpu")
    results = []
    for text in texts:
        found = pipe(text.replace("[MASK]", pipe.tokenizer.mask_token), top_k=top_k)
        results.append([{Atom("token"): p["token_str"].lstrip(), Atom("score"): float(p["score"])} for p in found])
    return results


def answers(model_dir: str, pairs: list[tuple[str, str]]) -> list[Any]:
    """The best context span of each (question, context), from the model's logits.

    Start and end probabilities are a softmax over the pair's own tokens (no
    padding); the answer is the context span ``i <= j`` with the highest
    ``p_start[i] * p_end[j]``, found by trying every one. Offsets are UTF-8 bytes.
    """
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from py_bridge.etf import Atom

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    results = []
    for question, context in pairs:
        enc = tokenizer(question, context, truncation="only_second", return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping")[0].tolist()
        with torch.no_grad():
            out = model(**enc)
        p_start, p_end = out.start_logits[0].softmax(-1).tolist(), out.end_logits[0].softmax(-1).tolist()
        in_context = [i for i, s in enumerate(enc.sequence_ids(0)) if s == 1]
        score, i, j = max((p_start[i] * p_end[j], i, j) for i in in_context for j in in_context if i <= j)
        start, end = offsets[i][0], offsets[j][1]
        results.append(
            {
                Atom("text"): context[start:end],
                Atom("start"): _byte_offset(context, start),
                Atom("end"): _byte_offset(context, end),
                Atom("score"): score,
            }
        )
    return results


def zero_shots(model_dir: str, texts: list[str], labels: list[str], template: str, top_k: int) -> list[list[Any]]:
    """transformers' zero-shot-classification pipeline (single label), top ``top_k``."""
    from transformers import pipeline

    from py_bridge.etf import Atom

    pipe = pipeline("zero-shot-classification", model=model_dir, device="cpu")
    results = []
    for text in texts:
        out = pipe(text, candidate_labels=labels, hypothesis_template=template)
        ranked = list(zip(out["labels"], out["scores"], strict=True))[:top_k]
        results.append([{Atom("label"): label, Atom("score"): float(score)} for label, score in ranked])
    return results


def cross_encodings(model_dir: str, pairs: list[tuple[str, str]]) -> list[float]:
    """The raw single logit of a sequence classifier for each pair, one pair at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    scores = []
    for first, second in pairs:
        # As one-element lists: given a lone empty second text, the tokenizer
        # drops the pair (an empty string is falsy) and its [SEP] with it.
        inputs = tokenizer([first], [second], truncation=True, return_tensors="pt")
        with torch.no_grad():
            scores.append(model(**inputs).logits[0, 0].item())
    return scores


# The Qwen3-Reranker model card's prompt.
QWEN3_RERANK_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_RERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_RERANK_TASK = "Given a web search query, retrieve relevant passages that answer the query"


def reranks(model_dir: str, pairs: list[tuple[str, str]], task: str) -> list[Any]:
    """The Qwen3-Reranker model card's recipe, one pair at a time (no padding):
    P("yes") against "no" at the last position of the prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from py_bridge.etf import Atom

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    results = []
    for query, document in pairs:
        content = f"<Instruct>: {task}\n<Query>: {query}\n<Document>: {document}"
        prompt = QWEN3_RERANK_PREFIX + content + QWEN3_RERANK_SUFFIX
        with torch.no_grad():
            last = model(**tokenizer(prompt, return_tensors="pt")).logits[0, -1]
        score = last[torch.tensor([no, yes])].softmax(-1)[1].item()
        results.append({Atom("score"): score, Atom("query"): query, Atom("document"): document})
    return results


def token_ids(model_dir: str, tokens: list[str]) -> list[int]:
    """The tokenizer's id for each token (as written in its vocabulary)."""
    from transformers import AutoTokenizer

    return [int(i) for i in AutoTokenizer.from_pretrained(model_dir).convert_tokens_to_ids(tokens)]


def generations(
    model_dir: str, texts: list[str], max_new_tokens: int, source: str | None, target: str | None
) -> list[dict[Any, Any]]:
    """Greedy ``model.generate`` on each text alone, under the model's own generation config.

    Decoder-only models get ``max_new_tokens``. With ``source``/``target``
    (translation) the tokenizer's ``src_lang`` is set, the decoder starts with
    ``[decoder_start, target]`` and the decoder sequence is bounded by
    ``1 + max_new_tokens``, as Bumblebee bounds it. Text is decoded by the
    Rust tokenizer without special tokens, as Bumblebee decodes it.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    from py_bridge.etf import Atom

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    seq2seq = AutoConfig.from_pretrained(model_dir).is_encoder_decoder
    model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(model_dir).eval()
    config = model.generation_config
    eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    if source is not None:
        tokenizer.src_lang = source
    results = []
    for text in texts:
        inputs = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            if seq2seq:
                start = [config.decoder_start_token_id]
                if target is not None:
                    start.append(tokenizer.convert_tokens_to_ids(target))
                output = model.generate(
                    **inputs, decoder_input_ids=torch.tensor([start]), max_length=1 + max_new_tokens, do_sample=False
                )[0, len(start) :]
            else:
                output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)[
                    0, inputs["input_ids"].shape[1] :
                ]
        ids = output.tolist()
        count = next((i + 1 for i, t in enumerate(ids) if t in eos), len(ids))
        results.append(
            {
                Atom("text"): tokenizer.backend_tokenizer.decode(ids[:count], skip_special_tokens=True),
                Atom("input"): inputs["input_ids"].shape[1],
                Atom("output"): count,
            }
        )
    return results


def _add_text_task_commands(commands: Any) -> None:
    """The subcommands of the text tasks; each sets ``run`` to compute its term."""
    tokens = commands.add_parser("token_classification", help="token-classification pipeline entities")
    tokens.add_argument("--model", required=True)
    tokens.add_argument("--aggregation", default="none", choices=["none", "simple", "first", "average", "max"])
    tokens.add_argument("--ignore", default="O", help="comma-separated labels to leave out; empty for none")
    tokens.add_argument("texts", nargs="+")
    tokens.set_defaults(
        run=lambda a: token_classifications(a.model, a.texts, a.aggregation, [x for x in a.ignore.split(",") if x])
    )
    fill = commands.add_parser("fill_mask", help="fill-mask pipeline predictions")
    fill.add_argument("--model", required=True)
    fill.add_argument("--top-k", type=int, default=5)
    fill.add_argument("texts", nargs="+")
    fill.set_defaults(run=lambda a: fill_masks(a.model, a.texts, a.top_k))
    qa = commands.add_parser("question_answering", help="best answer span; QUESTION CONTEXT pairs")
    qa.add_argument("--model", required=True)
    qa.add_argument("texts", nargs="+")
    qa.set_defaults(run=lambda a: answers(a.model, _pairs(a.texts)))
    zero_shot = commands.add_parser("zero_shot", help="zero-shot-classification pipeline predictions")
    zero_shot.add_argument("--model", required=True)
    zero_shot.add_argument("--label", action="append", required=True)
    zero_shot.add_argument("--template", default="This example is {}.")
    zero_shot.add_argument("--top-k", type=int, default=5)
    zero_shot.add_argument("texts", nargs="+")
    zero_shot.set_defaults(run=lambda a: zero_shots(a.model, a.texts, a.label, a.template, a.top_k))
    cross = commands.add_parser("cross_encoding", help="raw cross-encoder logits; TEXT TEXT pairs")
    cross.add_argument("--model", required=True)
    cross.add_argument("texts", nargs="+")
    cross.set_defaults(run=lambda a: cross_encodings(a.model, _pairs(a.texts)))
    rerank = commands.add_parser("rerank", help="Qwen3-Reranker P(yes); QUERY DOCUMENT pairs")
    rerank.add_argument("--model", required=True)
    rerank.add_argument("--task", default=QWEN3_RERANK_TASK)
    rerank.add_argument("texts", nargs="+")
    rerank.set_defaults(run=lambda a: reranks(a.model, _pairs(a.texts), a.task))
    ids = commands.add_parser("token_ids", help="the vocabulary id of each token")
    ids.add_argument("--model", required=True)
    ids.add_argument("tokens", nargs="+")
    ids.set_defaults(run=lambda a: token_ids(a.model, a.tokens))


# -- images and audio ---------------------------------------------------------------


def _image(spec: str) -> Any:
    """An image argument: ``raw:HxWxC:FILE`` (row-major u8 bytes) or an image file's path.

    Either way transformers gets an RGB PIL image: one channel repeated, a
    fourth (alpha) dropped, as Bumblebee treats channels.
    """
    import numpy as np
    from PIL import Image

    if spec.startswith("raw:"):
        _, dims, path = spec.split(":", 2)
        height, width, channels = (int(d) for d in dims.split("x"))
        array = np.fromfile(path, dtype=np.uint8).reshape(height, width, channels)
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
        return Image.fromarray(array[:, :, 0] if channels == 1 else array, mode).convert("RGB")
    with Image.open(spec) as image:
        return image.convert("RGB")


def image_classifications(model_dir: str, images: list[str], top_k: int) -> list[list[dict[Any, Any]]]:
    """Softmax over each image's logits, one image at a time, top ``top_k``."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    processor = AutoImageProcessor.from_pretrained(model_dir)
    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    results = []
    for spec in images:
        with torch.no_grad():
            scores = model(**processor(images=_image(spec), return_tensors="pt")).logits[0].softmax(-1).tolist()
        results.append(_top_labels(scores, model.config.id2label, top_k))
    return results


def image_embeddings(model_dir: str, images: list[str], output: str, l2_norm: bool) -> list[Any]:
    """One output of the model (``pooler_output``, ``image_embeds``, ...) per image, as nested lists."""
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(model_dir)
    model_class = getattr(transformers, config.architectures[0])
    processor = transformers.AutoImageProcessor.from_pretrained(model_dir)
    model = model_class.from_pretrained(model_dir).eval()
    results = []
    for spec in images:
        with torch.no_grad():
            value = getattr(model(**processor(images=_image(spec), return_tensors="pt")), output)[0]
        if l2_norm:
            value = torch.nn.functional.normalize(value, dim=-1)
        results.append(value.double().tolist())
    return results


def captions(model_dir: str, images: list[str], max_new_tokens: int) -> list[str]:
    """BLIP's greedy ``generate`` on each image alone, decoded without special tokens."""
    import torch
    from transformers import AutoImageProcessor, AutoTokenizer, BlipForConditionalGeneration

    processor = AutoImageProcessor.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = BlipForConditionalGeneration.from_pretrained(model_dir).eval()
    texts = []
    for spec in images:
        with torch.no_grad():
            ids = model.generate(**processor(images=_image(spec), return_tensors="pt"), max_new_tokens=max_new_tokens)
        texts.append(tokenizer.decode(ids[0], skip_special_tokens=True, clean_up_tokenization_spaces=False))
    return texts


def _audio(spec: str, rate: int) -> Any:
    """An audio argument: ``raw:FILE`` (f32 little-endian samples at ``rate``) or a sound file."""
    import numpy as np
    import soundfile

    if spec.startswith("raw:"):
        return np.fromfile(spec[4:], dtype="<f4")
    samples, file_rate = soundfile.read(spec, dtype="float32", always_2d=True)
    if file_rate != rate:
        raise SystemExit(f"{spec} is sampled at {file_rate} Hz, not {rate} Hz")
    return samples.mean(axis=1, dtype=np.float32)


def transcriptions(
    model_dir: str,
    audios: list[str],
    max_new_tokens: int,
    language: str | None,
    task: str | None,
    window: float | None,
) -> list[list[str]]:
    """transformers' greedy Whisper ``generate``, one call per window; the texts of each audio.

    Windows are ``window`` seconds long and do not overlap (the whole audio
    when not given). ``max_new_tokens`` counts the decoder prompt (start,
    language, task, no-timestamps) the way Bumblebee counts forced tokens.
    Whisper's ``begin_suppress_tokens`` are off, as Bumblebee never reads them.
    A window that yields no text token at all (only special tokens) gives no
    text, as it gives no chunk in Bumblebee.
    """
    import torch
    from transformers import AutoFeatureExtractor, AutoTokenizer, WhisperForConditionalGeneration
    from transformers.utils import logging as hf_logging

    # generate warns about the length settings Whisper passes itself.
    hf_logging.set_verbosity_error()
    featurizer = AutoFeatureExtractor.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
    model.generation_config.begin_suppress_tokens = None
    rate = featurizer.sampling_rate
    special = set(tokenizer.all_special_ids)
    first_timestamp = tokenizer.convert_tokens_to_ids("<|notimestamps|>") + 1
    prompt = 1 + 1 + (1 if task else 0) + 1
    results = []
    for spec in audios:
        samples = _audio(spec, rate)
        step = int(window * rate) if window else len(samples)
        texts = []
        for start in range(0, len(samples), step):
            features = featurizer(samples[start : start + step], sampling_rate=rate, return_tensors="pt")
            with torch.no_grad():
                ids = model.generate(
                    features.input_features,
                    language=language,
                    task=task,
                    max_new_tokens=max_new_tokens + 1 - prompt,
                    num_beams=1,
                    do_sample=False,
                    force_unique_generate_call=True,
                )
            text_ids = [t for t in ids[0].tolist() if t not in special and t < first_timestamp]
            if text_ids:
                texts.append(tokenizer.decode(text_ids, clean_up_tokenization_spaces=False))
        results.append(texts)
    return results


def _add_media_task_commands(commands: Any) -> None:
    """The subcommands of the image and audio tasks; each sets ``run`` to compute its term."""
    classify = commands.add_parser("image_classification", help="image classification scores; IMAGE...")
    classify.add_argument("--model", required=True)
    classify.add_argument("--top-k", type=int, default=5)
    classify.add_argument("images", nargs="+")
    classify.set_defaults(run=lambda a: image_classifications(a.model, a.images, a.top_k))
    embed = commands.add_parser("image_embedding", help="one model output per image; IMAGE...")
    embed.add_argument("--model", required=True)
    embed.add_argument("--output", default="pooler_output")
    embed.add_argument("--l2-norm", action="store_true")
    embed.add_argument("images", nargs="+")
    embed.set_defaults(run=lambda a: image_embeddings(a.model, a.images, a.output, a.l2_norm))
    caption = commands.add_parser("image_to_text", help="BLIP captions; IMAGE...")
    caption.add_argument("--model", required=True)
    caption.add_argument("--max-new-tokens", type=int, default=20)
    caption.add_argument("images", nargs="+")
    caption.set_defaults(run=lambda a: captions(a.model, a.images, a.max_new_tokens))
    whisper = commands.add_parser("whisper", help="Whisper transcripts, window by window; AUDIO...")
    whisper.add_argument("--model", required=True)
    whisper.add_argument("--max-new-tokens", type=int, default=20)
    whisper.add_argument("--language", default=None)
    whisper.add_argument("--task", default="transcribe", help="transcribe, translate or none")
    whisper.add_argument("--window", type=float, default=None, help="window length in seconds; no overlap")
    whisper.add_argument("audios", nargs="+")
    whisper.set_defaults(
        run=lambda a: transcriptions(
            a.model, a.audios, a.max_new_tokens, a.language, None if a.task == "none" else a.task, a.window
        )
    )


def _split_commands(argv: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for arg in argv:
        if arg == "---":
            parts.append([])
        else:
            parts[-1].append(arg)
    return parts


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
    _add_text_task_commands(commands)
    _add_media_task_commands(commands)
    generation = commands.add_parser("generation", help="greedy generate; --source/--target for translation")
    generation.add_argument("--model", required=True)
    generation.add_argument("--max-new-tokens", type=int, default=20)
    generation.add_argument("--source", default=None)
    generation.add_argument("--target", default=None)
    generation.add_argument("texts", nargs="+")
    generation.set_defaults(run=lambda a: generations(a.model, a.texts, a.max_new_tokens, a.source, a.target))
    parsed = [parser.parse_args(part) for part in _split_commands(argv)]

    from py_bridge.etf import encode

    # Whatever a library prints (from Python or C) must not end up inside the
    # term: keep a private copy of fd 1 for the result and point fd 1 at stderr.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with contextlib.redirect_stdout(sys.stderr):
        terms = [_run(args) for args in parsed]
    term = terms[0] if len(terms) == 1 else terms
    with out:
        out.write(encode(term))
    return 0


def _run(args: argparse.Namespace) -> Any:
    if args.command == "embedding":
        return embeddings(args.model, args.texts)
    if args.command == "classification":
        return classifications(args.model, args.texts, args.top_k)
    return args.run(args)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main(sys.argv[1:]))
