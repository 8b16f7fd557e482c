"""Speech to text with Whisper, mirroring ``Bumblebee.Audio.speech_to_text_whisper/5``.

Each item is ``%{audio: audio, seed: integer | nil}`` (a bare audio term is
accepted too), the audio being a rank-1 float tensor of samples at the
featurizer's sampling rate or ``{:file, path}`` (see
:mod:`py_bridge.tasks._media`). The result is
``%{chunks: [%{text:, start_timestamp_seconds:, end_timestamp_seconds:}]}``;
a streaming request also sends every chunk as a ``:chunk`` message as soon
as it is final.

Options (as Bumblebee's):

* ``generation_config`` - Bumblebee's generation config as a map (see
  :mod:`py_bridge.tasks._generate`). Required. Its lengths count the decoder
  prompt (start, language, task, no-timestamps) as Bumblebee counts forced
  tokens: ``max_new_tokens: 20`` leaves 16 tokens of text.
* ``extra_config`` - Bumblebee's Whisper settings: ``language_to_token_id``
  (``"en" => id``), ``task_to_token_id`` (``:transcribe => id``) and
  ``no_timestamps_token_id``. Defaults to the model's ``generation_config.json``.
* ``chunk_num_seconds`` - cut long audio into windows this long. Defaults to
  ``nil``: a tensor is one window, of which Whisper hears the first 30
  seconds; a file is cut into 30 s windows with no overlap, because that is
  how Bumblebee reads files (30 s per ``ffmpeg`` call).
* ``context_num_seconds`` - the overlap on each side of a cut. Defaults to a
  sixth of ``chunk_num_seconds``.
* ``client_batch_size`` - how many windows of one input are decoded, and
  merged, together. Defaults to ``batch_size``, else 1.
* ``batch_size`` - the serving's compiled batch size; windows are generated
  up to ``max(batch_size, client_batch_size)`` at a time.
* ``language`` - an ISO code such as ``"en"``, or ``nil`` to let the model
  detect it. ``task`` - ``:transcribe`` (the default), ``:translate`` or
  ``nil`` (English-only models). ``timestamps`` - ``nil`` or ``:segments``.
* ``featurizer`` - the directory of the feature extractor to use.

Decoding is greedy (or whatever the generation config's strategy says) with
``transformers``' Whisper ``generate``, one pass per window
(``force_unique_generate_call``). Where that differs from Bumblebee's own
decoder: with no ``language`` the language token is chosen among the language
tokens (Bumblebee lets the model pick any token there), and with timestamps
the first timestamp follows Whisper's rules (at most ``max_initial_timestamp_index``,
never decreasing) where Bumblebee forces ``<|0.00|>``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from py_bridge.errors import BadInputError, CancelledError, UnsupportedError
from py_bridge.etf import Atom
from py_bridge.featurizer import featurizer_dir, load_processor
from py_bridge.loading import LoadedModel
from py_bridge.tasks._auto import require_architecture
from py_bridge.tasks._generate import GenerationSettings, cancel_criteria
from py_bridge.tasks._media import decode_audio, file_path
from py_bridge.tasks._text import choice_option, int_option
from py_bridge.tasks._transcript import Chunk, TranscriptAssembler, Windowing, split_windows
from py_bridge.tasks.base import BatchContext, ItemResult, Task, validate_each
from py_bridge.tasks.generation import parse_seed

log = logging.getLogger(__name__)

_CHUNKS = Atom("chunks")

#: How much of a file Bumblebee decodes at a time (one ffmpeg call).
FILE_PIECE_SECONDS = 30

# Whisper's generate hands its own settings to the generic generate next to
# the config it built from ours, and transformers then warns, on every call,
# about its own call; it also asks for an attention mask that fixed-length
# audio features never need. Those messages say nothing about the serving.
_OWN_CALL_WARNINGS = (
    "Passing `generation_config` together with",
    "Both `max_new_tokens`",
    "The attention mask is not set",
)


class _OwnCallWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_OWN_CALL_WARNINGS)


def _quiet_own_call_warnings() -> None:
    generation_log = logging.getLogger("transformers.generation.utils")
    if not any(isinstance(f, _OwnCallWarnings) for f in generation_log.filters):
        generation_log.addFilter(_OwnCallWarnings())


@dataclass
class WhisperTokens:
    """Bumblebee's Whisper ``extra_config``: language and task tokens, and no-timestamps."""

    language_to_token_id: dict[str, int]
    task_to_token_id: dict[str, int]
    no_timestamps_token_id: int | None

    @classmethod
    def from_term(cls, term: Any) -> WhisperTokens:
        fields = {str(k): v for k, v in term.items()}
        languages = {_text(k): v for k, v in (fields.get("language_to_token_id") or {}).items()}
        tasks = {str(k): v for k, v in (fields.get("task_to_token_id") or {}).items()}
        return cls(languages, tasks, fields.get("no_timestamps_token_id"))

    @classmethod
    def from_generation_config(cls, config: Any) -> WhisperTokens:
        languages = {
            k.removeprefix("<|").removesuffix("|>"): v for k, v in (getattr(config, "lang_to_id", None) or {}).items()
        }
        tasks = dict(getattr(config, "task_to_id", None) or {})
        return cls(languages, tasks, getattr(config, "no_timestamps_token_id", None))


@dataclass
class Transcription:
    """One item on its way through the batch."""

    index: int
    windows: list[Any]
    seed: int | None
    assembler: TranscriptAssembler
    fed: int = 0
    waiting: list[list[int]] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)


class SpeechToTextWhisper(Task):
    """Transcribes (or translates) audio with a Whisper model, window by window."""

    name = "speech_to_text_whisper"

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        super().__init__(model, options)
        self.settings = GenerationSettings.from_term(options.get("generation_config"))
        self.chunk_num_seconds = _seconds(options, "chunk_num_seconds")
        context = _seconds(options, "context_num_seconds")
        if context is None and self.chunk_num_seconds:
            context = self.chunk_num_seconds / 6
        self.context_num_seconds = context or 0.0
        batch_size = int_option(options, "batch_size", None)
        self.client_batch_size = int_option(options, "client_batch_size", batch_size or 1) or 1
        self.generate_batch_size = max(self.client_batch_size, batch_size or 1)
        language = options.get("language")
        self.language = None if language is None else _text(language)
        self.task = choice_option(options, "task", ("transcribe", "translate", None), "transcribe")
        self.timestamps = choice_option(options, "timestamps", (None, "segments"), None) is not None

        self.featurizer = load_processor(
            "AutoFeatureExtractor", featurizer_dir(model, options), model.ref.trust_remote_code
        )
        self.sampling_rate = int(self.featurizer.sampling_rate)
        if self.chunk_num_seconds:
            # Fail at load rather than on the first long input.
            split_windows([], self.sampling_rate, self.chunk_num_seconds, self.context_num_seconds)
        require_architecture(model, "for_conditional_generation")
        import transformers

        self.hf_model = model.load(transformers.AutoModelForSpeechSeq2Seq)
        self.tokenizer = model.load_tokenizer()
        self._backend = getattr(self.tokenizer, "backend_tokenizer", None)
        extra = options.get("extra_config")
        tokens = (
            WhisperTokens.from_term(extra)
            if isinstance(extra, dict) and extra
            else WhisperTokens.from_generation_config(self.hf_model.generation_config)
        )
        self.whisper_config = self._whisper_generation_config(tokens)
        # generate fills unset fields from the model's own config; only the
        # serving's config (and the Whisper token maps) may count, as in Bumblebee.
        self.hf_model.generation_config = self.whisper_config
        # The decoder prompt generate builds: start, language (given or
        # detected), task (transformers adds :transcribe when only a language
        # is given), no-timestamps.
        has_language = bool(self.language or tokens.language_to_token_id)
        has_task = bool(self.task or (self.language and tokens.task_to_token_id))
        prompt = 1 + int(has_language) + int(has_task) + (0 if self.timestamps else 1)
        self.max_new, self.min_new = self.settings.new_token_bounds(encoder_decoder=True, prefix_length=prompt)
        self.timestamp_begin = self.tokenizer.convert_tokens_to_ids("<|notimestamps|>") + 1
        self.time_precision = float(self.featurizer.chunk_length) / self.hf_model.config.max_source_positions
        self.special_ids = set(self.tokenizer.all_special_ids)
        _quiet_own_call_warnings()

    def _whisper_generation_config(self, tokens: WhisperTokens) -> Any:
        """The Whisper fields ``generate`` reads, checked against the options as Bumblebee checks them."""
        from transformers import GenerationConfig

        if self.language is not None:
            if not tokens.task_to_token_id:
                raise UnsupportedError(
                    "the generation config does not have any languages defined. If you are dealing with a "
                    "monolingual model, set :language to nil. Otherwise you may need to update "
                    "generation_config.extra_config.language_to_token_id"
                )
            if self.language not in tokens.language_to_token_id:
                known = ", ".join(f'"{code}"' for code in sorted(tokens.language_to_token_id))
                raise UnsupportedError(f'invalid language "{self.language}", expected one of: {known}')
        if self.task is not None:
            if not tokens.task_to_token_id:
                raise UnsupportedError(
                    "the generation config does not have any tasks defined. If you are dealing with a "
                    "monolingual model, set :task to nil. Otherwise you may need to update "
                    "generation_config.extra_config.task_to_token_id"
                )
            if self.task not in tokens.task_to_token_id:
                known = ", ".join(f":{task}" for task in sorted(tokens.task_to_token_id))
                raise UnsupportedError(f"invalid task :{self.task}, expected one of: {known}")
        if tokens.no_timestamps_token_id is None:
            raise UnsupportedError("the generation config has no no_timestamps_token_id; is this a Whisper model?")
        fields: dict[str, Any] = {
            "no_timestamps_token_id": tokens.no_timestamps_token_id,
            "max_initial_timestamp_index": getattr(
                self.hf_model.generation_config, "max_initial_timestamp_index", None
            ),
            "is_multilingual": bool(tokens.language_to_token_id),
        }
        if tokens.language_to_token_id:
            fields["lang_to_id"] = {f"<|{code}|>": token for code, token in tokens.language_to_token_id.items()}
        if tokens.task_to_token_id:
            fields["task_to_id"] = dict(tokens.task_to_token_id)
        return GenerationConfig(**fields)

    # -- items ----------------------------------------------------------------------

    def parse(self, item: Any) -> tuple[Any, int | None, bool]:
        """An item: ``%{audio: audio, seed: seed}``, or the audio alone; also whether it was a file."""
        if isinstance(item, dict) and "__struct__" not in item:
            fields = {str(k): v for k, v in item.items()}
            if "audio" not in fields:
                raise BadInputError(f"expected the input map to have :audio key, got keys: {sorted(fields)}")
            audio, seed = fields["audio"], parse_seed(fields)
        else:
            audio, seed = item, None
        samples = decode_audio(audio, self.sampling_rate)
        if samples.size == 0:
            raise BadInputError("expected audio with at least one sample, got none")
        return samples, seed, file_path(audio) is not None

    def transcription(self, index: int, samples: Any, seed: int | None, from_file: bool) -> Transcription:
        if from_file and not self.chunk_num_seconds:
            # Bumblebee reads a file in 30 s pieces (ffmpeg calls) and, without
            # chunking, transcribes each piece as a window of its own.
            windows = split_windows(samples, self.sampling_rate, FILE_PIECE_SECONDS, 0)
        else:
            windows = split_windows(samples, self.sampling_rate, self.chunk_num_seconds, self.context_num_seconds)
        assembler = TranscriptAssembler(
            decode=self.decode,
            special_ids=self.special_ids,
            timestamp_begin=self.timestamp_begin,
            time_precision=self.time_precision,
            windowing=Windowing.of(self.chunk_num_seconds, self.context_num_seconds, self.sampling_rate),
            timestamps=self.timestamps,
        )
        return Transcription(index, windows, seed, assembler)

    # -- running ----------------------------------------------------------------------

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        good, parsed, results = validate_each(items, self.parse)
        jobs = [self.transcription(i, *item) for i, item in zip(good, parsed, strict=True)]
        for batch in self.batches(jobs):
            if ctx.is_cancelled():
                break
            sequences = self.generate([job.windows[w] for job, w in batch], batch[0][0].seed, ctx)
            if ctx.is_cancelled():
                break
            for (job, _), sequence in zip(batch, sequences, strict=True):
                self.feed(job, sequence, ctx)
        for job in jobs:
            if job.fed < len(job.windows):
                results[job.index] = CancelledError("the request was cancelled while transcribing")
            else:
                results[job.index] = {_CHUNKS: [chunk.to_term() for chunk in job.chunks]}
        return results

    def batches(self, jobs: list[Transcription]) -> list[list[tuple[Transcription, int]]]:
        """Windows in input order, cut into ``generate`` calls.

        Sampled items never share a call, since each seeds the generator.
        """
        batches: list[list[tuple[Transcription, int]]] = []
        current: list[tuple[Transcription, int]] = []
        for job in jobs:
            if self.settings.sampling and current:
                batches.append(current)
                current = []
            for window in range(len(job.windows)):
                current.append((job, window))
                if len(current) == self.generate_batch_size:
                    batches.append(current)
                    current = []
        if current:
            batches.append(current)
        return batches

    def feed(self, job: Transcription, sequence: list[int], ctx: BatchContext) -> None:
        """Give a window's tokens to its transcript, a ``client_batch_size`` group at a time."""
        job.waiting.append(sequence)
        job.fed += 1
        last = job.fed == len(job.windows)
        if len(job.waiting) < self.client_batch_size and not last:
            return
        chunks = job.assembler.update(job.waiting)
        job.waiting = []
        if last:
            chunks += job.assembler.finish()
        job.chunks.extend(chunks)
        if ctx.stream:
            for chunk in chunks:
                ctx.emit(job.index, chunk.to_term())

    def generate(self, windows: list[Any], seed: int | None, ctx: BatchContext) -> list[list[int]]:
        """One ``generate`` call over audio windows; each window's token ids."""
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        features = self.featurizer(windows, sampling_rate=self.sampling_rate, return_tensors="pt")
        features = features["input_features"].to(self.hf_model.device, self.hf_model.dtype)
        kwargs = self.settings.generate_kwargs(max_new=self.max_new, min_new=self.min_new)
        if len(kwargs.get("eos_token_id") or []) == 1:
            # Whisper's timestamp rule slices the vocabulary at the EOS id, so it must be one integer.
            kwargs["eos_token_id"] = kwargs["eos_token_id"][0]
        config = GenerationConfig(**{**self.whisper_config.to_diff_dict(), **kwargs})
        if seed is not None and self.settings.sampling:
            torch.manual_seed(seed % (1 << 64))
        with torch.inference_mode():
            sequences = self.hf_model.generate(
                features,
                generation_config=config,
                language=self.language,
                task=self.task,
                return_timestamps=self.timestamps,
                force_unique_generate_call=True,
                stopping_criteria=StoppingCriteriaList([cancel_criteria(ctx.is_cancelled)]),
            )
        if not torch.is_tensor(sequences):
            sequences = sequences["sequences"]
        return sequences.tolist()

    def decode(self, ids: list[int]) -> str:
        """Decode without special tokens and without clean-up, as Bumblebee's Rust tokenizer does."""
        if self._backend is not None:
            return self._backend.decode(ids, skip_special_tokens=True)
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _seconds(options: dict[str, Any], name: str) -> float | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BadInputError(f"expected :{name} to be a non-negative number, got: {value!r}")
    return float(value)


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8") if isinstance(value, (bytes, bytearray, memoryview)) else str(value)


TASK = SpeechToTextWhisper
