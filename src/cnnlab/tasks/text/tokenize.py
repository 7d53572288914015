"""Sentence to tokens: Kim's clean_str, whitespace splitting, or characters (for a character-level CNN)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cnnlab.errors import ConfigError

# Kim 2014, yoonkim/CNN_sentence process_data.py: the patterns verbatim, in his order. His replacements for "(", ")"
# and "?" are written " \( ", " \) ", " \? ", which Python's re keeps with the backslash (an unknown escape is left
# alone), so his vocabulary holds the tokens "\(" and "\?"; we emit the bare "(", ")" and "?" that the rule means.
_KIM_RULES: tuple[tuple[str, str], ...] = (
    (r"[^A-Za-z0-9(),!?\'\`]", " "),
    (r"\'s", " 's"),
    (r"\'ve", " 've"),
    (r"n\'t", " n't"),
    (r"\'re", " 're"),
    (r"\'d", " 'd"),
    (r"\'ll", " 'll"),
    (r",", " , "),
    (r"!", " ! "),
    (r"\(", " ( "),
    (r"\)", " ) "),
    (r"\?", " ? "),
    (r"\s{2,}", " "),
)
_KIM_COMPILED = tuple((re.compile(pattern), replacement) for pattern, replacement in _KIM_RULES)
RULES = ("kim", "whitespace", "chars")


def clean_str(text: str, lower: bool = True) -> str:
    """Kim 2014's tokenization: every character but letters, digits and ( ) , ! ? ' ` becomes a space; the clitics
    's 've n't 're 'd 'll split off their word; , ! ( ) ? stand apart; runs of spaces collapse to one.

    Kim lower-cases every data set but TREC (his `clean_str(string, TREC=True)` is `lower=False` here), so that the
    question words keep their case for word2vec.

    Args:
        text: one sentence or document.
        lower: lower-case the result (False for TREC, as Kim).

    Returns:
        The tokens joined by single spaces, stripped.
    """
    for pattern, replacement in _KIM_COMPILED:
        text = pattern.sub(replacement, text)
    text = text.strip()
    return text.lower() if lower else text


@dataclass(frozen=True)
class Tokenizer:
    """A sentence to a token list; saved in a run's meta so that predict tokenizes as training did.

    rules: "kim" (clean_str, then split on spaces), "whitespace" (split on runs of white space) or "chars" (one token
    per character, spaces kept as " ", for the character-level CNN of Zhang, Zhao & LeCun 2015).
    """

    rules: str = "kim"
    lower: bool = True

    def __post_init__(self) -> None:
        if self.rules not in RULES:
            raise ConfigError(f"tokenizer rules: unknown {self.rules!r}; expected one of {', '.join(RULES)}")

    def __call__(self, text: str) -> list[str]:
        if self.rules == "kim":
            return clean_str(text, lower=self.lower).split()
        if self.lower:
            text = text.lower()
        if self.rules == "chars":
            return list(text)
        return text.split()

    def to_meta(self) -> dict:
        """JSON-ready settings for a run folder."""
        return {"rules": self.rules, "lower": self.lower}

    @classmethod
    def from_meta(cls, meta: dict) -> Tokenizer:
        """The tokenizer saved by `to_meta`."""
        return cls(rules=meta.get("rules", "kim"), lower=bool(meta.get("lower", True)))
