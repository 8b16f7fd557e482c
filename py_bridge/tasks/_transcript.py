"""Turning Whisper's per-chunk token sequences into transcript chunks, as Bumblebee does.

Long audio is cut into overlapping windows (``chunk_num_seconds`` long, with
``context_num_seconds`` of overlap on each side of every cut). Each window
gives one token sequence; :class:`TranscriptAssembler` is fed those sequences
in order, a group at a time (``client_batch_size`` windows), and hands back
the transcript chunks that are final so far, so a stream can emit them early.
The rules are those of Bumblebee 0.7's ``speech_to_text_whisper``:

* **Without timestamps** consecutive sequences are merged where they overlap
  (:func:`merge_overlapping`); a chunk ends at the end of each group, once
  two sequences can be merged, and the last merged sequence waits for the
  next group. Their timestamps are ``nil``.
* **With timestamps** every segment the model closes (a start and an end
  timestamp) becomes a chunk, with times in seconds from the start of the
  audio rounded to 2 decimals. Timestamps inside a window's left or right
  context are ignored, because the neighbouring window covers that audio.
* Special tokens (language, task, end of text) never reach the text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import floor
from typing import Any

from py_bridge.errors import BadInputError
from py_bridge.etf import Atom

_TEXT, _START, _END = Atom("text"), Atom("start_timestamp_seconds"), Atom("end_timestamp_seconds")


@dataclass
class Chunk:
    """One transcript chunk: its text and, with timestamps, where it starts and ends."""

    text: str | None = None
    start: float | None = None
    end: float | None = None

    def to_term(self) -> dict[Atom, Any]:
        return {_TEXT: self.text, _START: self.start, _END: self.end}


@dataclass(frozen=True)
class Windowing:
    """How the audio was cut: window and context lengths in seconds, as whole samples."""

    chunk_seconds: float | None
    context_seconds: float

    @classmethod
    def of(cls, chunk_num_seconds: float | None, context_num_seconds: float | None, sampling_rate: int) -> Windowing:
        chunk = floor(chunk_num_seconds * sampling_rate) / sampling_rate if chunk_num_seconds else None
        context = floor(context_num_seconds * sampling_rate) / sampling_rate if context_num_seconds else 0.0
        return cls(chunk, context if chunk else 0.0)


def split_windows(
    samples: Any, sampling_rate: int, chunk_num_seconds: float | None, context_num_seconds: float
) -> list:
    """Cut ``samples`` into overlapping windows, as Bumblebee's input chunking does.

    Windows are ``chunk`` samples long and start every ``chunk - 2 * context``
    samples. Whatever is left after the last whole window (it always holds
    that window's right context) becomes one final, shorter window. Without
    ``chunk_num_seconds`` the audio is one window.
    """
    if not chunk_num_seconds:
        return [samples]
    length = floor(chunk_num_seconds * sampling_rate)
    context = floor(context_num_seconds * sampling_rate)
    step = length - 2 * context
    if step <= 0:
        raise BadInputError(":chunk_num_seconds must be more than double the length of :context_num_seconds")
    windows = []
    start = 0
    while len(samples) - start >= length:
        windows.append(samples[start : start + length])
        start += step
    if len(samples) > start:
        windows.append(samples[start:])
    return windows


def merge_overlapping(sequences: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """Merge consecutive overlapping sequences; return the merged part and the unmerged tail.

    For each pair, every alignment of the right sequence against the end of
    the left one is scored by its share of equal tokens (plus a tiny bonus for
    longer overlaps). The best alignment with more than one match is cut in
    the middle of its overlap: the left sequence up to there, the right one
    from there on. The right part of the last sequence stays unmerged, so a
    later sequence can still be merged with it.
    """
    import numpy as np

    if len(sequences) == 1:
        return list(sequences[0]), []
    left = np.asarray(sequences[0])
    merged: list[int] = []
    for right_list in sequences[1:]:
        right = np.asarray(right_list)
        n_left, n_right = len(left), len(right)
        best_score, cut = 0.0, (n_left, n_left, 0, 0)
        for i in range(1, n_left + n_right):
            left_start, left_stop = max(0, n_left - i), min(n_left, n_left + n_right - i)
            right_start, right_stop = max(0, i - n_left), min(n_right, i)
            matches = int((left[left_start:left_stop] == right[right_start:right_stop]).sum())
            score = matches / i + i / 10000.0
            if matches > 1 and score > best_score:
                best_score, cut = score, (left_start, left_stop, right_start, right_stop)
        left_start, left_stop, right_start, right_stop = cut
        merged.extend(left[: (left_start + left_stop) // 2].tolist())
        left = right[(right_start + right_stop) // 2 :]
    return merged, left.tolist()


class TranscriptAssembler:
    """Builds the transcript of one audio input from its windows' token sequences."""

    def __init__(
        self,
        *,
        decode: Callable[[list[int]], str],
        special_ids: set[int],
        timestamp_begin: int,
        time_precision: float,
        windowing: Windowing,
        timestamps: bool,
    ) -> None:
        self.decode = decode
        self.special_ids = special_ids
        self.timestamp_begin = timestamp_begin
        self.time_precision = time_precision
        self.windowing = windowing
        self.timestamps = timestamps
        self.time_offset = 0.0
        self.right_context_end: float | None = None
        #: Text token runs not yet turned into a chunk, oldest first.
        self.pending: list[list[int]] = []
        self.current: list[int] = []
        self.chunk = Chunk()
        self.done: list[Chunk] = []

    def update(self, sequences: Sequence[Sequence[int]]) -> list[Chunk]:
        """Feed the sequences of one group of windows; return the chunks finished by them."""
        for sequence in sequences:
            self._add(sequence)
        # With timestamps, chunks end at closing timestamps. Without, a group
        # ends a chunk, but with context only once two sequences can be merged.
        if not self.timestamps and (not self.windowing.context_seconds or len(self.pending) >= 2):
            self._finish_chunk()
        return self._take()

    def finish(self) -> list[Chunk]:
        """The audio ended: flush whatever is pending."""
        self._finish_chunk()
        return self._take()

    def _take(self) -> list[Chunk]:
        done, self.done = self.done, []
        return done

    def _add(self, sequence: Sequence[int]) -> None:
        begin, precision = self.timestamp_begin, self.time_precision
        context_right = self.windowing.context_seconds
        # The first window has no left context.
        context_left = context_right if self.time_offset else 0.0
        time_offset = self.time_offset - context_left
        first_timestamp = begin + context_left / precision
        last_timestamp, right_end_token = self._right_context(sequence)
        self.right_context_end = (
            time_offset + (right_end_token - begin) * precision if right_end_token is not None else None
        )
        for token in sequence:
            if token < begin:
                if token not in self.special_ids:
                    self.current.append(token)
                continue
            time = round((token - begin) * precision + time_offset, 2)
            if last_timestamp is not None and token >= last_timestamp:
                continue
            if self.pending and token < first_timestamp:
                # A segment still open from the previous window: skip its left context.
                continue
            if self.chunk.start is None:
                self.chunk.start = time
            elif self.chunk.start != time:
                self.chunk.end = time
                self._finish_sequence()
                self._finish_chunk()
        self._finish_sequence()
        if self.windowing.chunk_seconds:
            time_offset += self.windowing.chunk_seconds - context_right
        self.time_offset = time_offset

    def _right_context(self, sequence: Sequence[int]) -> tuple[int | None, int | None]:
        """The first timestamp to ignore (the right context's), and the last timestamp of all.

        When no timestamp falls in the right context the window's last
        timestamp is ignored anyway, so the next window has tokens to merge.
        """
        context = self.windowing.context_seconds
        if not context or self.windowing.chunk_seconds is None:
            return None, None
        right_context_start = self.windowing.chunk_seconds - context
        begin, precision = self.timestamp_begin, self.time_precision
        last_timestamp = end_token = None
        for token in reversed(sequence):
            if token < begin:
                continue
            if end_token is None:
                end_token = token
            if last_timestamp is not None and (token - begin) * precision < right_context_start:
                break
            last_timestamp = token
        return last_timestamp, end_token

    def _finish_sequence(self) -> None:
        if self.current:
            self.pending.append(self.current)
            self.current = []

    def _finish_chunk(self) -> None:
        if not self.pending:
            self.chunk = Chunk()
            return
        merged, rest = merge_overlapping(self.pending)
        # With timestamps a chunk never ends inside a context, so nothing after
        # it overlaps; without, the last sequence must wait for its successor.
        if self.timestamps or not rest:
            tokens, self.pending = merged + rest, []
        else:
            tokens, self.pending = merged, [rest]
        self.chunk.text = self.decode(tokens)
        if self.chunk.end is None:
            # A segment left open ends where the last timestamp of the right
            # context says. Bumblebee does not round this one time; neither do we.
            self.chunk.end = self.right_context_end
        self.done.append(self.chunk)
        self.chunk = Chunk()
