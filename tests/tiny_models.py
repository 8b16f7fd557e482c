"""Tiny random-weight models, built offline and deterministically, for tests.

No model hub is reachable from the test machines, so every task except
embeddings (which has the bundled all-MiniLM-L6-v2) is tested on models built
here from a ``transformers`` config, fixed seeds and a locally built tokenizer.
Each build takes well under a second and a few hundred KiB.

Two choices make the models useful as test subjects:

* ``initializer_range=0.2`` (ten times the default). With the default init
  every output is nearly uniform and barely depends on the input, so labels
  and rankings would hinge on ties 1e-4 apart.
* The WordPiece vocabulary holds multi-byte words ("café", "naïve", "zürich",
  "東", "京") and keeps accents, so character offsets and UTF-8 byte offsets
  differ and byte-offset code is really exercised.

Models are cached in ``$PYBRIDGE_CACHE_DIR`` (default ``<repo>/.cache/tiny_models``)
in a directory named ``<name>-<hash>``, where the hash covers the builder's
source, the shared helpers and the library versions: editing a builder or
upgrading transformers rebuilds it, and nothing else does. A build happens in
a temporary directory that is renamed into place, so concurrent test processes
never see a half-written model.

From Python::

    from tests.tiny_models import tiny_model
    path = tiny_model("bert_sequence_classification")

From a shell (the Elixir tests do this), one path per line on stdout::

    python tests/tiny_models.py bert_base bert_masked_lm
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent

# -- shared ingredients ---------------------------------------------------------

#: Common lowercase words of the WordPiece vocabulary. Test sentences are made
#: of these so that they tokenize into real words rather than [UNK].
WORDS = """
the a an is are was were be been am i you he she it we they me my your his her its our their this that these those
and or but not no yes if then so of in on at to from by for with about as into over after before under between
what who where when why how which there here all some any each every one two three many much more most very
love loved hate good bad great terrible awful nice happy sad movie film book song food weather day night time
year people man woman child city country world work home house car road water fire tree cat dog bird fish
capital paris france berlin germany london england rome italy new york john smith mary jane alice bob apple
google company lives live lived born visit visited play played go went see saw make made think know like say
said get got come came take took give gave find found tell told ask asked feel felt seem leave call run
question answer context text sentence word example document query relevant passage search judge true false
""".split()

#: Multi-byte words, kept whole (accents are not stripped) so that byte
#: offsets and character offsets differ. CJK characters are always split one
#: per token by the BERT pre-tokenizer, hence single characters.
MULTIBYTE_WORDS = ["café", "naïve", "zürich", "münchen", "señor", "東", "京", "é", "ü", "ï", "ñ"]

SUBWORD_SUFFIXES = ["s", "ed", "ing", "ly", "er", "est", "ion", "é", "ü", "ï", "ñ"]

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

PUNCTUATION = list(".,!?;:'\"()-/")

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


def _wordpiece_vocab() -> dict[str, int]:
    """A small BERT vocabulary: specials, characters, ##-pieces and words."""
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    tokens = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars] + PUNCTUATION
    tokens += [f"##{s}" for s in SUBWORD_SUFFIXES] + WORDS + MULTIBYTE_WORDS
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab


def _bert_tokenizer() -> Any:
    from transformers import BertTokenizer

    # strip_accents=False keeps "café" as one multi-byte token; with the BERT
    # default (strip when lowercasing) it would become "cafe".
    return BertTokenizer(vocab=_wordpiece_vocab(), do_lower_case=True, strip_accents=False, model_max_length=128)


def _bert_config(**overrides: Any) -> Any:
    from transformers import BertConfig

    settings: dict[str, Any] = {
        "vocab_size": len(_wordpiece_vocab()),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
        "initializer_range": 0.2,
        "pad_token_id": 0,
    }
    settings.update(overrides)
    return BertConfig(**settings)


def _labels(names: list[str]) -> dict[str, Any]:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def _build_bert(out: Path, model_class_name: str, **config: Any) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    model = getattr(transformers, model_class_name)(_bert_config(**config))
    model.save_pretrained(out)
    _bert_tokenizer().save_pretrained(out)


def _byte_level_bpe(corpus: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE (GPT-2 / Qwen style) on a fixed corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(corpus, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    # to_str() writes merges as two-element lists; the tokenizer classes want tuples.
    return model["vocab"], [tuple(m) for m in model["merges"]]


def _corpus(seed: int, sentences: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(sentences)]


# -- builders -------------------------------------------------------------------

Builder = Callable[[Path], None]
BUILDERS: dict[str, Builder] = {}


def _builder(fn: Builder) -> Builder:
    BUILDERS[fn.__name__] = fn
    return fn


@_builder
def bert_sequence_classification(out: Path) -> None:
    """BertForSequenceClassification with labels NEGATIVE/POSITIVE."""
    _build_bert(out, "BertForSequenceClassification", **_labels(["NEGATIVE", "POSITIVE"]))


@_builder
def bert_sequence_classification_pickled(out: Path) -> None:
    """The weights of ``bert_sequence_classification``, saved only as a pickle (``pytorch_model.bin``).

    For the safety tests: a worker must refuse to load it unless ``allow_pickle`` is given.
    """
    import torch
    from safetensors.torch import load_file

    bert_sequence_classification(out)
    weights = out / "model.safetensors"
    torch.save(load_file(weights), out / "pytorch_model.bin")
    weights.unlink()


@_builder
def bert_sequence_classification_3labels(out: Path) -> None:
    """BertForSequenceClassification with three labels, for top_k and ordering tests."""
    _build_bert(out, "BertForSequenceClassification", **_labels(["negative", "neutral", "positive"]))


@_builder
def bert_base(out: Path) -> None:
    """BertModel (with pooler), for embeddings."""
    _build_bert(out, "BertModel")


@_builder
def bert_token_classification(out: Path) -> None:
    """BertForTokenClassification with the nine CoNLL BIO labels."""
    _build_bert(out, "BertForTokenClassification", **_labels(NER_LABELS))


@_builder
def bert_masked_lm(out: Path) -> None:
    """BertForMaskedLM."""
    _build_bert(out, "BertForMaskedLM")


@_builder
def bert_question_answering(out: Path) -> None:
    """BertForQuestionAnswering."""
    _build_bert(out, "BertForQuestionAnswering")


@_builder
def bert_nli(out: Path) -> None:
    """An NLI classifier for zero-shot classification.

    Entailment is deliberately not index 0 (MNLI checkpoints commonly order
    contradiction, neutral, entailment), so code that assumes its position fails.
    """
    _build_bert(out, "BertForSequenceClassification", **_labels(["contradiction", "neutral", "entailment"]))


@_builder
def bert_cross_encoder(out: Path) -> None:
    """A one-logit BertForSequenceClassification, shaped like ms-marco cross-encoders."""
    _build_bert(out, "BertForSequenceClassification", num_labels=1)


@_builder
def qwen3_causal_lm(out: Path) -> None:
    """Qwen3ForCausalLM with a byte-level BPE, shaped like a Qwen3 reranker.

    "yes" and "no" are single tokens (the reranker reads their logits), the
    chat markers are special tokens, and ``<think>``/``</think>`` plain added
    tokens. Left padding is passed to the constructor: set as an attribute
    afterwards it is not saved, and batched last-position logits would then
    belong to pad tokens.
    """
    import torch
    from transformers import Qwen2Tokenizer, Qwen3Config, Qwen3ForCausalLM

    prompt_words = (
        "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
        'Note that the answer can only be "yes" or "no". Given a web search query, retrieve relevant '
        "passages that answer the query"
    )
    # The answers also stand alone (no leading space), as the reranker reads them.
    corpus = _corpus(seed=1, sentences=400) + [prompt_words] * 5 + ["yes", "no", "yes no"] * 50
    vocab, merges = _byte_level_bpe(corpus, vocab_size=500)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]  # tuples, as tokenizers' BPE takes them
        unk_token=None,  # type: ignore[arg-type]  # byte-level BPE never needs one
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        extra_special_tokens=["<|im_start|>"],
        padding_side="left",
        model_max_length=256,
    )
    tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        # The default head_dim of 128 would make this "tiny" model 4x larger.
        head_dim=8,
        max_position_embeddings=256,
        initializer_range=0.2,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    Qwen3ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


@_builder
def bert_sequence_classification_3labels_seed1(out: Path) -> None:
    """bert_sequence_classification_3labels with other random weights (seed 1): a "different model" for parity."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(1)
    BertForSequenceClassification(_bert_config(**_labels(["negative", "neutral", "positive"]))).save_pretrained(out)
    _bert_tokenizer().save_pretrained(out)


@_builder
def deberta_v2_sequence_classification(out: Path) -> None:
    """DebertaV2ForSequenceClassification: a class Bumblebee 0.7 does not load, for the native check."""
    import torch
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    torch.manual_seed(0)
    config = DebertaV2Config(
        vocab_size=len(_wordpiece_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        initializer_range=0.2,
        pad_token_id=0,
        **_labels(["NEGATIVE", "POSITIVE"]),
    )
    DebertaV2ForSequenceClassification(config).save_pretrained(out)
    _bert_tokenizer().save_pretrained(out)


@_builder
def gpt2_causal_lm(out: Path) -> None:
    """GPT2LMHeadModel with a byte-level BPE, for text generation.

    Left padding is passed to the tokenizer's constructor (an attribute set
    afterwards is not saved). The generation config suppresses the 128 byte
    tokens that are not valid UTF-8 on their own (0x80-0xFF): a random model
    picks them often, and they would decode to U+FFFD.
    """
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, GPT2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab, merges = _byte_level_bpe(_corpus(seed=2, sentences=400), vocab_size=400)
    tokenizer = GPT2Tokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]  # tuples, as tokenizers' BPE takes them
        unk_token=None,  # type: ignore[arg-type]  # byte-level BPE never needs one
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=512,
    )
    byte_chars = bytes_to_unicode()
    lone_bytes = sorted(tokenizer.convert_tokens_to_ids(byte_chars[b]) for b in range(0x80, 0x100))
    special = tokenizer.eos_token_id
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_inner=64,
        # Room for long generations, so a test can stop one midway.
        n_positions=512,
        initializer_range=0.2,
        bos_token_id=special,
        eos_token_id=special,
        pad_token_id=special,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config = GenerationConfig(
        bos_token_id=special, eos_token_id=special, pad_token_id=special, suppress_tokens=lone_bytes
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@_builder
def nllb_translation(out: Path) -> None:
    """M2M100ForConditionalGeneration with an NLLB tokenizer and four language tokens.

    The tokenizer is a Metaspace BPE with ``eng_Latn``, ``fra_Latn``,
    ``deu_Latn`` and ``spa_Latn`` as special tokens, so the source language
    token comes first in the encoder input, as in NLLB. The generation config
    suppresses ``<s>``, ``<pad>``, ``<unk>`` and the language tokens: a random
    decoder otherwise repeats a special token and decodes to "". One layer
    each side and ``init_std=0.2`` keep the output dependent on the input.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.train_from_iterator(
        _corpus(seed=3, sentences=400),
        trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False),
    )
    trained = json.loads(bpe.to_str())["model"]
    languages = ["eng_Latn", "fra_Latn", "deu_Latn", "spa_Latn"]
    tokenizer = NllbTokenizer(
        vocab=trained["vocab"],
        merges=[tuple(m) for m in trained["merges"]],
        extra_special_tokens=languages,
        src_lang="eng_Latn",
        tgt_lang="fra_Latn",
        model_max_length=128,
    )
    bos, pad, eos, unk = (tokenizer.convert_tokens_to_ids(t) for t in ("<s>", "<pad>", "</s>", "<unk>"))
    torch.manual_seed(0)
    config = M2M100Config(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        init_std=0.2,
        scale_embedding=True,
        bos_token_id=bos,
        pad_token_id=pad,
        eos_token_id=eos,
        decoder_start_token_id=eos,
    )
    model = M2M100ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=bos,
        pad_token_id=pad,
        eos_token_id=eos,
        decoder_start_token_id=eos,
        suppress_tokens=[bos, pad, unk, *tokenizer.convert_tokens_to_ids(languages)],
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@_builder
def whisper_speech_to_text(out: Path) -> None:
    """WhisperForConditionalGeneration with a real Whisper token layout, for speech-to-text.

    The tokenizer is a 400-token byte-level BPE followed by Whisper's specials
    in Whisper's order (end of text, start of transcript, the 100 languages,
    translate, transcribe, start of LM, start of prev, no speech, no
    timestamps) and the 1501 timestamps ``<|0.00|>``...``<|30.00|>``:
    ``transformers`` derives language ids, ``timestamp_begin`` and
    ``<|nospeech|>`` from those positions. The encoder keeps 1500 positions
    because the feature extractor always pads to 30 s.

    Two weight edits make a random decoder usable. Its final layer norm gives
    a constant 1 in the last hidden unit, and every timestamp embedding reads
    that unit with weight 4 (its other weights scaled down), so all timestamps
    share one moderate logit: greedy text decoding never picks one on its own,
    but the timestamp rule of ``generate`` (force a timestamp when their total
    probability beats every text token) fires now and then, so segments open
    and close. ``init_std=0.5`` makes the text depend on the audio.
    """
    import torch
    from tokenizers import AddedToken
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    vocab, merges = _byte_level_bpe(_corpus(seed=3, sentences=400), vocab_size=400)
    languages = [f"<|{code}|>" for code in LANGUAGES]
    specials = ["<|startoftranscript|>", *languages, "<|translate|>", "<|transcribe|>"]
    specials += ["<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    vocab = dict(vocab)
    for token in ["<|endoftext|>", *specials]:
        vocab.setdefault(token, len(vocab))
    # Specials given to the constructor end all_special_ids at <|notimestamps|>,
    # which is where decoding with timestamps looks for the first timestamp.
    tokenizer = WhisperTokenizer(
        vocab=vocab,
        merges=merges,
        pad_token="<|endoftext|>",
        extra_special_tokens=[AddedToken(t, special=True, normalized=False) for t in specials],
    )
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in timestamps])
    ids = tokenizer.convert_tokens_to_ids
    end = ids("<|endoftext|>")
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=448,
        init_std=0.5,
        pad_token_id=end,
        bos_token_id=end,
        eos_token_id=end,
        decoder_start_token_id=ids("<|startoftranscript|>"),
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():
        norm = model.model.decoder.layer_norm
        norm.weight[-1], norm.bias[-1] = 0.0, 1.0
        embeddings = model.model.decoder.embed_tokens.weight
        stamp_ids = [ids(t) for t in timestamps]
        embeddings[stamp_ids, :-1] *= 0.1
        embeddings[stamp_ids, -1] = 4.0
    lone_bytes = sorted(ids(bytes_to_unicode()[b]) for b in range(0x80, 0x100))
    model.generation_config = GenerationConfig(
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
        decoder_start_token_id=ids("<|startoftranscript|>"),
        max_length=448,
        is_multilingual=True,
        lang_to_id={t: ids(t) for t in languages},
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
        begin_suppress_tokens=[ids("Ġ"), end],
        suppress_tokens=lone_bytes,
        alignment_heads=[[0, 0], [0, 1]],
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    featurizer = WhisperFeatureExtractor(
        feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    )
    featurizer.save_pretrained(out)


def _build_vit(out: Path, model_class_name: str, **config: Any) -> None:
    """A 32x32 ViT with ``model_class_name``'s head, and its image processor.

    The Pillow-backed processor class is used because torchvision is absent;
    it saves as ``ViTImageProcessor`` and reloads through AutoImageProcessor.
    """
    import torch
    import transformers
    from transformers import ViTConfig, ViTImageProcessorPil

    torch.manual_seed(0)
    vit = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        initializer_range=0.2,
        **config,
    )
    getattr(transformers, model_class_name)(vit).save_pretrained(out)
    processor = ViTImageProcessorPil(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor.save_pretrained(out)


@_builder
def vit_image_classification(out: Path) -> None:
    """ViTForImageClassification on 32x32 images with labels cat/dog/bird."""
    _build_vit(out, "ViTForImageClassification", **_labels(["cat", "dog", "bird"]))


@_builder
def vit_base(out: Path) -> None:
    """ViTModel (with pooler), for image embeddings."""
    _build_vit(out, "ViTModel")


@_builder
def clip_vision_embedding(out: Path) -> None:
    """CLIPVisionModelWithProjection (Bumblebee's ClipVision ``:for_embedding``), 16-dim image embeddings.

    The processor resizes the shortest edge to 32 and center-crops 32x32, so
    non-square images exercise the crop.
    """
    import torch
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        projection_dim=16,
        initializer_range=0.2,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(out)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)


@_builder
def blip_image_captioning(out: Path) -> None:
    """BlipForConditionalGeneration with the WordPiece vocabulary, for image-to-text.

    The vision tower is initialized ten times wider than the text decoder
    (1.0 against 0.1-0.2): with both small, captions barely depend on the
    image. The image processor is saved on its own so that
    ``preprocessor_config.json`` exists (a BlipProcessor would nest it).
    """
    import torch
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipTextConfig,
        BlipVisionConfig,
    )

    tokenizer = _bert_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    text = BlipTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        encoder_hidden_size=32,
        max_position_embeddings=64,
        initializer_range=0.2,
        bos_token_id=ids("[CLS]"),
        eos_token_id=ids("[SEP]"),
        sep_token_id=ids("[SEP]"),
        pad_token_id=ids("[PAD]"),
    )
    vision = BlipVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        initializer_range=1.0,
    )
    torch.manual_seed(0)
    config = BlipConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16, initializer_range=1.0
    )
    BlipForConditionalGeneration(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    BlipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(out)


# -- cache ----------------------------------------------------------------------

_SHARED_HELPERS: tuple[Callable[..., Any], ...] = (
    _build_vit,
    _wordpiece_vocab,
    _bert_tokenizer,
    _bert_config,
    _labels,
    _build_bert,
    _byte_level_bpe,
    _corpus,
)


def cache_dir() -> Path:
    """Where built models live: ``$PYBRIDGE_CACHE_DIR`` or ``<repo>/.cache/tiny_models``."""
    configured = os.environ.get("PYBRIDGE_CACHE_DIR")
    return Path(configured).expanduser() if configured else REPO_ROOT / ".cache" / "tiny_models"


def fingerprint(name: str) -> str:
    """A short hash of everything a build depends on.

    It covers the builder's source, the shared helpers and vocabulary, and the
    versions of the libraries that write the files, so any of those changing
    yields a new directory (and the old one is simply never used again).
    """
    parts = [inspect.getsource(BUILDERS[name])]
    parts += [inspect.getsource(helper) for helper in _SHARED_HELPERS]
    parts += [repr((WORDS, MULTIBYTE_WORDS, SUBWORD_SUFFIXES, SPECIAL_TOKENS, PUNCTUATION, NER_LABELS))]
    parts += [f"{dist}=={metadata.version(dist)}" for dist in ("torch", "transformers", "tokenizers")]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:12]


def tiny_model(name: str) -> Path:
    """The directory of tiny model ``name``, building it first if needed."""
    if name not in BUILDERS:
        raise KeyError(f"unknown tiny model {name!r}; known: {', '.join(sorted(BUILDERS))}")
    root = cache_dir()
    final = root / f"{name}-{fingerprint(name)}"
    if (final / "config.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        logger.info("building tiny model %s in %s", name, final)
        from transformers.utils import logging as hf_logging

        # The "Writing model shards" bar is noise in test output.
        hf_logging.disable_progress_bar()
        BUILDERS[name](tmp)
        # save_pretrained writes weights with mode 0600; the Elixir tests may
        # run as another user, and mkdtemp made the directory 0700.
        for path in tmp.iterdir():
            path.chmod(0o644)
        tmp.chmod(0o755)
        try:
            tmp.rename(final)
        except OSError:
            # Another process finished the same build first; its copy is identical.
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def main(argv: list[str]) -> int:
    """Build the named models (``all`` for every one) and print one path per line."""
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write(f"usage: tiny_models.py NAME... | all\nknown: {' '.join(sorted(BUILDERS))}\n")
        return 2
    names = sorted(BUILDERS) if argv == ["all"] else argv
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        sys.stderr.write(f"unknown tiny model(s): {', '.join(unknown)}; known: {' '.join(sorted(BUILDERS))}\n")
        return 2
    for name in names:
        sys.stdout.write(f"{tiny_model(name)}\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main(sys.argv[1:]))
