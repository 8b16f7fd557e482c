"""Turning streamed token ids into text chunks the way Bumblebee does.

Bumblebee's streaming generation does not send one chunk per token: it
decodes the tokens seen since the last flush and emits

* everything, when the sequence finished or the text ends in a newline
  (and then starts afresh);
* everything, when the text ends in a CJK character (those are whole tokens);
* the text up to the last space, when there is one past the first byte;
* nothing otherwise, waiting for more tokens.

Tokens are kept after a partial emit because some tokenizers decide whether a
token starts with a space from the tokens before it. :class:`TextChunker`
holds that logic; :class:`ChunkStreamer` feeds it from ``generate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The CJK ranges Bumblebee (after BERT's tokenizer) treats as whole characters.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_cjk(char: str) -> bool:
    """Whether ``char`` is in one of the CJK ideograph ranges."""
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


class TextChunker:
    """Buffers token ids and says which text chunks to emit after each one."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._tokens: list[int] = []
        self._consumed = 0  # bytes of the decoded text already emitted

    def push(self, token_id: int, finished: bool) -> list[str]:
        """Add one generated token; return the chunks to emit now (zero or one)."""
        self._tokens.append(token_id)
        # Offsets are in UTF-8 bytes, as Bumblebee slices binaries; a cut only
        # ever falls after a space or a whole CJK character, so it stays valid.
        pending = self._decode(self._tokens).encode("utf-8")[self._consumed :]
        chunk = pending.decode("utf-8", "replace")
        if finished or chunk.endswith("\n"):
            self._tokens, self._consumed = [], 0
            return [chunk]
        if chunk and is_cjk(chunk[-1]):
            self._consumed += len(pending)
            return [chunk]
        space = pending.rfind(b" ")
        if space > 0:
            self._consumed += space
            return [pending[:space].decode("utf-8", "replace")]
        return []


class ChunkStreamer:
    """A ``generate`` streamer for one sequence that emits Bumblebee's chunks.

    ``generate`` first puts the prompt (or the decoder prefix), which is
    skipped, then one token per step, then calls :meth:`end`. Whether a token
    is the last one is only known at ``end``, so each token is held back one
    step: the final token is then pushed as finished, exactly as Bumblebee
    flushes on its last token.
    """

    def __init__(self, decode: Callable[[list[int]], str], emit: Callable[[str], None]) -> None:
        self._chunker = TextChunker(decode)
        self._emit = emit
        self._prompt_seen = False
        self._held: int | None = None

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            if self._held is not None:
                self._send(self._held, finished=False)
            self._held = int(token)

    def end(self) -> None:
        if self._held is not None:
            self._send(self._held, finished=True)
            self._held = None

    def _send(self, token: int, finished: bool) -> None:
        for chunk in self._chunker.push(token, finished):
            self._emit(chunk)


def streamer_class() -> type:
    """:class:`ChunkStreamer` as a subclass of ``transformers``' BaseStreamer.

    ``generate`` only duck-types its streamer, but subclassing keeps any
    ``isinstance`` check in future versions happy; the import stays lazy.
    """
    from transformers.generation.streamers import BaseStreamer

    return type("BumblebeeChunkStreamer", (ChunkStreamer, BaseStreamer), {})
