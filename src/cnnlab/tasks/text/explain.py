"""Which n-grams decided: the windows Kim's max-over-time pooling picked, weighted by what they gave the answer.

After max-over-time pooling each filter contributes one number, its best window's activation; the softmax
layer turns it into evidence for class c as `activation * W[c, filter]`. Summing that over the filters that
picked the same window (start, width) ranks the sentence's n-grams by how much they pushed the predicted class —
an exact decomposition of the logit (up to the bias), not a gradient approximation.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.tasks.text.encoder import TextEncoder


@dataclass
class Ngram:
    words: list[str]
    start: int  # index of the first word in the sentence's tokens
    width: int
    score: float  # summed evidence for the predicted class


@dataclass
class Explanation:
    sentence: str
    tokens: list[str]
    label: int
    probability: float
    ngrams: list[Ngram]


def can_explain(model: nn.Module) -> bool:
    return hasattr(model, "ngram_activations") and hasattr(model, "get_classifier")


def _window(tokens: list[str], start: int, width: int) -> tuple[int, list[str]]:
    """The window's words within the sentence (a wide convolution's windows may hang over either end)."""
    first, last = max(start, 0), min(start + width, len(tokens))
    return first, tokens[first:last]


@torch.inference_mode()
def explain_sentence(model: nn.Module, encoder: TextEncoder, sentence: str, top: int = 3) -> Explanation:
    """The predicted class, its probability and the `top` n-grams that gave it the most evidence."""
    model.eval()
    tokens = encoder.tokens([sentence])[0][: encoder.max_length]
    ids = encoder.encode_tokens([tokens])
    probabilities = torch.softmax(model(ids).float(), dim=1)[0]
    label = int(probabilities.argmax())
    weights = model.get_classifier().weight[label].float()
    evidence: dict[tuple[int, int], float] = defaultdict(float)
    offset = 0
    for width, values, positions in model.ngram_activations(ids):
        count = values.shape[1]
        contribution = values[0].float() * weights[offset : offset + count]
        for position, score in zip(positions[0].tolist(), contribution.tolist()):
            evidence[(int(position), int(width))] += score
        offset += count
    ranked = sorted(evidence.items(), key=lambda item: item[1], reverse=True)
    ngrams = []
    for (start, width), score in ranked:
        first, words = _window(tokens, start, width)
        if words and score > 0:
            ngrams.append(Ngram(words, first, len(words), round(score, 4)))
        if len(ngrams) == top:
            break
    return Explanation(sentence, tokens, label, float(probabilities[label]), ngrams)
