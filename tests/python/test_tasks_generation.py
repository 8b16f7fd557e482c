"""The generation and translation tasks against ``transformers``' ``generate`` called directly.

Every reference here runs ``model.generate`` (or, for contrastive search,
which ``transformers`` 5 no longer ships, a plain loop without a cache) on
one prompt alone, with no padding, from the same tiny model directory;
nothing goes through ``py_bridge.tasks``. The tasks pad, batch and group
items, so equal token counts and texts also show that batching changes
nothing. Texts are decoded by the Rust tokenizer without special tokens, as
Bumblebee decodes them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tiny_models import tiny_model

from py_bridge.errors import BadInputError, CancelledError, UnsupportedError
from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel, ModelRef, model_spec
from py_bridge.tasks import BatchContext, task_class
from py_bridge.tasks._generate import GenerationSettings
from py_bridge.tasks._text_stream import TextChunker

A = Atom
PROMPTS = ["the cat sat on the mat", "hello", "i love this movie and the weather is nice today"]
NEW_TOKENS = 12


def load(name: str) -> LoadedModel:
    path = tiny_model(name)
    return LoadedModel(ref=ModelRef(model=str(path)), path=path, spec=model_spec(path))


def wire_config(model: Any, **overrides: Any) -> dict[Atom, Any]:
    """The generation config the shim would send, from the model's own generation_config.json."""
    own = model.generation_config
    config: dict[str, Any] = {
        "max_new_tokens": NEW_TOKENS,
        "strategy": {A("type"): A("greedy_search")},
        "eos_token_id": own.eos_token_id,
        "pad_token_id": own.pad_token_id,
        "bos_token_id": own.bos_token_id,
        "decoder_start_token_id": own.decoder_start_token_id,
        "suppressed_token_ids": list(own.suppress_tokens or []),
        "forced_token_ids": [],
    }
    config.update(overrides)
    return {A(k): v for k, v in config.items()}


def make(task: str, model: LoadedModel, config: dict[Atom, Any]) -> Any:
    return task_class(task)(model, {A("generation_config"): config})


def result(value: Any) -> tuple[str, dict[str, int]]:
    (item,) = value[A("results")]
    return item[A("text")], {str(k): v for k, v in item[A("token_summary")].items()}


def count_to_eos(ids: list[int], eos: int) -> int:
    return next((i + 1 for i, t in enumerate(ids) if t == eos), len(ids))


class Reference:
    """A model and tokenizer loaded straight from transformers."""

    def __init__(self, name: str) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        self.path = tiny_model(name)
        self.seq2seq = AutoConfig.from_pretrained(self.path).is_encoder_decoder
        auto = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        self.model = auto.from_pretrained(self.path).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.eos = self.model.generation_config.eos_token_id

    def generate(self, text: str, **kwargs: Any) -> tuple[list[int], int]:
        """New token ids of ``text`` alone, and its prompt length."""
        inputs = self.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            out = self.model.generate(**inputs, **kwargs)
        skip = kwargs["decoder_input_ids"].shape[1] if self.seq2seq else inputs["input_ids"].shape[1]
        return out[0, skip:].tolist(), inputs["input_ids"].shape[1]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.backend_tokenizer.decode(ids, skip_special_tokens=True)


@pytest.fixture(scope="module")
def gpt2() -> Reference:
    return Reference("gpt2_causal_lm")


@pytest.fixture(scope="module")
def generation(gpt2: Reference) -> Any:
    return make("generation", load("gpt2_causal_lm"), wire_config(gpt2.model))


@pytest.fixture(scope="module")
def nllb() -> Reference:
    return Reference("nllb_translation")


@pytest.fixture(scope="module")
def translation(nllb: Reference) -> Any:
    return make("translation", load("nllb_translation"), wire_config(nllb.model, max_new_tokens=8))


# -- greedy generation ------------------------------------------------------------------


def test_greedy_text_and_counts_equal_generate_alone_and_in_a_batch(gpt2: Reference, generation: Any) -> None:
    batched = generation.run([p.encode() for p in PROMPTS], BatchContext())
    alone = [generation.run([{A("text"): p.encode(), A("seed"): 1}], BatchContext())[0] for p in PROMPTS]
    longest = max(len(gpt2.tokenizer(p)["input_ids"]) for p in PROMPTS)
    for prompt, many, one in zip(PROMPTS, batched, alone, strict=True):
        ids, prompt_length = gpt2.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False)
        count = count_to_eos(ids, gpt2.eos)
        assert result(one) == (gpt2.decode(ids[:count]), {"input": prompt_length, "output": count, "padding": 0})
        text, summary = result(many)
        assert text == gpt2.decode(ids[:count])
        assert summary == {"input": prompt_length, "output": count, "padding": longest - prompt_length}


def test_eos_ends_a_sequence_early_and_min_new_tokens_delays_it(gpt2: Reference) -> None:
    model = load("gpt2_causal_lm")
    ids, _ = gpt2.generate("hello", max_new_tokens=NEW_TOKENS, do_sample=False)
    # Declare the third greedy token the EOS: the sequence must stop there.
    stop = ids[2]
    task = make("generation", model, wire_config(gpt2.model, eos_token_id=stop))
    assert result(task.run([b"hello"], BatchContext())[0])[1]["output"] == ids.index(stop) + 1

    task = make("generation", model, wire_config(gpt2.model, eos_token_id=stop, min_new_tokens=5))
    expected, _ = gpt2.generate("hello", max_new_tokens=NEW_TOKENS, min_new_tokens=5, eos_token_id=stop)
    text, summary = result(task.run([b"hello"], BatchContext())[0])
    assert summary["output"] == count_to_eos(expected, stop) > 5
    assert text == gpt2.decode(expected[: summary["output"]])


def test_an_absolute_max_length_counts_each_prompt_alone(gpt2: Reference) -> None:
    config = wire_config(gpt2.model, max_new_tokens=None, max_length=16)
    task = make("generation", load("gpt2_causal_lm"), config)
    batched = task.run([p.encode() for p in PROMPTS], BatchContext())
    for prompt, value in zip(PROMPTS, batched, strict=True):
        length = len(gpt2.tokenizer(prompt)["input_ids"])
        if length >= 16:
            assert isinstance(value, BadInputError)
            assert "but max_length is set to 16" in value.message
            continue
        ids, _ = gpt2.generate(prompt, max_length=16, do_sample=False)
        assert result(value) == (gpt2.decode(ids), {"input": length, "output": 16 - length, "padding": 0})


def test_forced_token_ids_force_a_token_at_a_sequence_position(gpt2: Reference) -> None:
    length = len(gpt2.tokenizer("hello")["input_ids"])
    forced = gpt2.tokenizer(" the")["input_ids"][0]
    task = make("generation", load("gpt2_causal_lm"), wire_config(gpt2.model, forced_token_ids=[(length + 2, forced)]))
    text, _ = result(task.run([b"hello"], BatchContext())[0])
    ids, _ = gpt2.generate("hello", max_new_tokens=NEW_TOKENS, do_sample=False)
    assert text != gpt2.decode(ids)
    # The free tokens before the forced one are the greedy ones.
    assert text.startswith(gpt2.decode(ids[:2]) + gpt2.decode([forced]))


def test_a_prompt_longer_than_the_model_is_truncated(generation: Any) -> None:
    (value,) = generation.run([("the cat sat on the mat " * 200).encode()], BatchContext())
    # 512 positions, NEW_TOKENS of them left for the generated tokens.
    assert result(value)[1] == {"input": 512 - NEW_TOKENS, "output": NEW_TOKENS, "padding": 0}


def test_bad_items_fail_alone(generation: Any) -> None:
    items = [b"\xff\xfe", {A("prompt"): b"hi"}, {A("text"): b"hello", A("seed"): 1.5}, b"hello"]
    values = generation.run(items, BatchContext())
    assert [type(v) for v in values[:3]] == [BadInputError] * 3
    assert "expected the input map to have :text key" in values[1].message
    assert result(values[3])[1]["output"] == NEW_TOKENS


def test_more_new_tokens_than_the_model_has_positions_is_a_bad_input(gpt2: Reference) -> None:
    # The tiny GPT-2 has 512 positions; past them torch would fail with an IndexError.
    task = make("generation", load("gpt2_causal_lm"), wire_config(gpt2.model, max_new_tokens=5000))
    [value] = task.run([b"hello"], BatchContext())
    assert isinstance(value, BadInputError)
    assert "exceed the model's maximum of 512 positions" in value.message


def test_the_architecture_and_config_are_checked(gpt2: Reference) -> None:
    with pytest.raises(UnsupportedError, match="for_causal_language_modeling"):
        make("generation", load("bert_base"), wire_config(gpt2.model))
    with pytest.raises(UnsupportedError, match="pad_token_id"):
        make("generation", load("gpt2_causal_lm"), wire_config(gpt2.model, pad_token_id=None, eos_token_id=None))


# -- sampling ------------------------------------------------------------------------------


def test_seeded_sampling_equals_generate_after_manual_seed(gpt2: Reference) -> None:
    strategy = {A("type"): A("multinomial_sampling"), A("top_k"): 20}
    task = make("generation", load("gpt2_causal_lm"), wire_config(gpt2.model, strategy=strategy))
    items = [{A("text"): p.encode(), A("seed"): seed} for seed, p in enumerate(PROMPTS, start=3)]
    first = task.run(items, BatchContext())
    again = task.run(list(reversed(items)), BatchContext())[::-1]
    assert first == again
    for seed, prompt, value in zip(range(3, 6), PROMPTS, first, strict=True):
        torch.manual_seed(seed)
        ids, _ = gpt2.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=True, top_k=20, top_p=1.0)
        assert result(value)[0] == gpt2.decode(ids[: count_to_eos(ids, gpt2.eos)])


# -- contrastive search ----------------------------------------------------------------------


def naive_contrastive(reference: Reference, prompt: str, top_k: int, alpha: float, suppressed: list[int]) -> list[int]:
    """Contrastive search written plainly: every step reruns the whole sequence, no cache."""
    model = reference.model
    sequence = reference.tokenizer(prompt, return_tensors="pt")["input_ids"]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            out = model(input_ids=sequence, output_hidden_states=True)
            logits = out.logits[0, -1].clone()
            logits[suppressed] = -float("inf")
            probabilities, candidates = logits.softmax(-1).topk(top_k)
            context = torch.nn.functional.normalize(out.hidden_states[-1][0], dim=-1)
            scores = []
            for probability, candidate in zip(probabilities.tolist(), candidates.tolist(), strict=True):
                extended = torch.cat([sequence, torch.tensor([[candidate]])], dim=-1)
                hidden = model(input_ids=extended, output_hidden_states=True).hidden_states[-1][0, -1]
                penalty = (context @ torch.nn.functional.normalize(hidden, dim=-1)).max().item()
                scores.append((1 - alpha) * probability - alpha * penalty)
            token = candidates[max(range(top_k), key=lambda i: scores[i])].item()
            new.append(token)
            sequence = torch.cat([sequence, torch.tensor([[token]])], dim=-1)
            if token == reference.eos:
                break
    return new


def test_contrastive_search_equals_a_plain_implementation(gpt2: Reference, generation: Any) -> None:
    suppressed = list(gpt2.model.generation_config.suppress_tokens)
    strategy = {A("type"): A("contrastive_search"), A("top_k"): 4, A("alpha"): 0.6}
    task = make("generation", load("gpt2_causal_lm"), wire_config(gpt2.model, strategy=strategy))
    # Two prompts of different lengths: the shorter one is padded in the batch.
    prompts = PROMPTS[:2]
    values = task.run([p.encode() for p in prompts], BatchContext())
    for prompt, value in zip(prompts, values, strict=True):
        assert result(value)[0] == gpt2.decode(naive_contrastive(gpt2, prompt, 4, 0.6, suppressed))
    # With no penalty the most probable candidate wins: greedy search.
    greedy = make("generation", load("gpt2_causal_lm"), wire_config(gpt2.model, strategy={**strategy, A("alpha"): 0.0}))
    assert greedy.run([b"hello"], BatchContext()) == generation.run([b"hello"], BatchContext())


# -- streaming and cancelling --------------------------------------------------------------------


def test_streamed_chunks_add_up_to_the_text_in_order(generation: Any) -> None:
    chunks: list[tuple[int, str]] = []
    ctx = BatchContext(stream=True, emit=lambda index, value: chunks.append((index, value)))
    values = generation.run([p.encode() for p in PROMPTS], ctx)
    for index, value in enumerate(values):
        assert "".join(c for i, c in chunks if i == index) == result(value)[0]
        assert result(value) == result(generation.run([PROMPTS[index].encode()], BatchContext())[0])
    # Items stream one after another, each completely.
    order = [i for i, _ in chunks]
    assert order == sorted(order)


def test_chunks_are_cut_as_bumblebee_cuts_them() -> None:
    pieces = {1: " hello", 2: " wor", 3: "ld", 4: "\n", 5: "東", 6: "京", 7: "x", 8: " end"}
    chunker = TextChunker(lambda ids: "".join(pieces[i] for i in ids))
    emitted = [chunker.push(token, finished=token == 8) for token in [1, 2, 3, 4, 5, 6, 7, 8]]
    # " hello" has its only space at byte 0; " wor" cuts before it; a newline
    # flushes; CJK characters go out at once; the last token flushes the rest.
    assert emitted == [[], [" hello"], [], [" world\n"], ["東"], ["京"], [], ["x end"]]


def test_cancelling_stops_generation_between_tokens(gpt2: Reference) -> None:
    task = make("generation", load("gpt2_causal_lm"), wire_config(gpt2.model, max_new_tokens=300))
    state = {"cancelled": False, "checks_after": 0}

    def emit(index: int, value: str) -> None:
        state["cancelled"] = True

    def is_cancelled() -> bool:
        if state["cancelled"]:
            state["checks_after"] += 1
        return state["cancelled"]

    (value,) = task.run([b"hello"], BatchContext(stream=True, emit=emit, is_cancelled=is_cancelled))
    assert isinstance(value, CancelledError)
    # generate checks once per token: it stopped right after the first chunk.
    assert state["checks_after"] <= 3


# -- translation ------------------------------------------------------------------------------


def test_translation_equals_generate_with_language_tokens(nllb: Reference, translation: Any) -> None:
    start = nllb.model.generation_config.decoder_start_token_id
    for source, target in [("eng_Latn", "fra_Latn"), ("deu_Latn", "spa_Latn")]:
        items = [
            {A("text"): p.encode(), A("source_language_token"): source.encode(), A("target_language_token"): target}
            for p in PROMPTS
        ]
        values = translation.run(items, BatchContext())
        nllb.tokenizer.src_lang = source
        prefix = torch.tensor([[start, nllb.tokenizer.convert_tokens_to_ids(target)]])
        for prompt, value in zip(PROMPTS, values, strict=True):
            # Bumblebee bounds the decoder at 1 + max_new_tokens (8) tokens.
            ids, length = nllb.generate(prompt, decoder_input_ids=prefix, max_length=9, do_sample=False)
            count = count_to_eos(ids, nllb.eos)
            text, summary = result(value)
            assert (text, summary["input"], summary["output"]) == (nllb.decode(ids[:count]), length, count)


def test_translation_items_are_checked(translation: Any) -> None:
    good = {A("text"): b"hello", A("source_language_token"): b"eng_Latn", A("target_language_token"): b"fra_Latn"}
    items = [
        {**good, A("target_language_token"): b"xx_Xxxx"},
        {A("text"): b"hello"},
        b"hello",
        {**good, A("source_language_token"): b"deu_Latn"},
        good,
    ]
    values = translation.run(items, BatchContext())
    assert [type(v) for v in values[:3]] == [BadInputError] * 3
    assert "'xx_Xxxx' is not a valid token" in values[0].message
    # Items of two source languages in one batch are tokenized apart and both answered.
    assert result(values[3])[0] != result(values[4])[0]


# -- settings ------------------------------------------------------------------------------------


def test_settings_map_bumblebee_lengths_and_strategies() -> None:
    config = {
        A("max_new_tokens"): 8,
        A("strategy"): {A("type"): A("multinomial_sampling"), A("top_p"): 0.9},
        A("eos_token_id"): [2, 5],
        A("suppressed_token_ids"): [1],
        A("no_repeat_ngram_length"): 3,
    }
    settings = GenerationSettings.from_term(config)
    assert settings.pad_id() == 2
    # An encoder-decoder's decoder holds at most 1 + max_new_tokens tokens.
    assert settings.new_token_bounds(encoder_decoder=True, prefix_length=2) == (7, None)
    assert settings.new_token_bounds(encoder_decoder=False, prefix_length=30) == (8, None)
    kwargs = settings.generate_kwargs(max_new=7, min_new=None)
    assert kwargs["do_sample"] is True and kwargs["top_k"] == 0 and kwargs["top_p"] == 0.9
    assert (kwargs["eos_token_id"], kwargs["suppress_tokens"], kwargs["no_repeat_ngram_size"]) == ([2, 5], [1], 3)

    absolute = GenerationSettings.from_term({**config, A("max_new_tokens"): None, A("max_length"): 10})
    assert absolute.new_token_bounds(encoder_decoder=False, prefix_length=4) == (6, None)
    with pytest.raises(BadInputError, match="the input sequence has 10 tokens, but max_length is set to 10"):
        absolute.new_token_bounds(encoder_decoder=False, prefix_length=10)
    with pytest.raises(BadInputError, match="missing keys"):
        GenerationSettings.from_term({**config, A("strategy"): {A("type"): A("contrastive_search")}})
