"""Prompts from raw text: a document's opening words, for the model to continue. A text
dataset has no prompts of its own, yet a continued-pre-training run's samples and probes
need some; the first words of held-out documents are what the run learned to continue."""
from __future__ import annotations

OPENING_WORDS = 16


def document_openings(texts, words: int = OPENING_WORDS) -> list[str]:
    """Each text's first `words` whitespace-separated words (empty texts skipped)."""
    return [" ".join(t.split()[:words]) for t in texts if t and t.split()]
