"""A byte-level tokenizer: ids 0-255 are bytes, then begin-of-text, end-of-text and padding."""

from __future__ import annotations

BOS_ID = 256
EOS_ID = 257
PAD_ID = 258


def encode(text: str) -> list[int]:
    """The UTF-8 bytes of ``text`` as token ids."""
    return list(text.encode("utf-8"))


def encode_example(prompt: str, response: str, max_seq_len: int) -> tuple[list[int], int]:
    """Token ids of one prompt/response pair and how many leading ids belong to the prompt.

    The sequence is ``BOS prompt response EOS``, cut to ``max_seq_len`` tokens; training
    computes the loss on the response (and EOS) only.
    """
    prompt_ids = [BOS_ID, *encode(prompt)]
    ids = [*prompt_ids, *encode(response), EOS_ID]
    return ids[:max_seq_len], min(len(prompt_ids), max_seq_len)
