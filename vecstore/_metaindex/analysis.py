"""Text analysis for BM25 indexes: text -> terms.

1. Unicode word splitting: maximal runs of letters and digits (``[^\\W_]+``,
   i.e. ``str.isalnum`` characters -- the same words tantivy's and Lucene's
   simple tokenizers cut);
2. lowercasing (``str.lower``);
3. accent folding: NFKD, combining marks dropped (``é`` -> ``e``,
   ``ﬁ`` -> ``fi``);
4. optional stop words (per language, or a given list), dropped before
5. optional stemming with a Snowball stemmer (PyStemmer), per language.

An :class:`Analyzer` is recorded with its index (``to_dict``), so the
terms of a stored document and of a query are always cut the same way,
whatever the process that opens the store later.  PyStemmer is a core
dependency for that reason: a store indexed with stemming must stay
queryable and writable wherever it is opened.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .._errors import InvalidArgumentError

WORD = re.compile(r"[^\W_]+")
MAX_TERM = 64  # longer words (hashes, base64) are kept cut to this many characters

# Lucene's English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET).
_STOP = {
    "english": (
        "a an and are as at be but by for if in into is it no not of on or such that the "
        "their then there these they this to was will with"
    ),
    "french": (
        "au aux avec ce ces dans de des du elle en et eux il je la le les leur lui ma mais me "
        "même mes moi mon ne nos notre nous on ou par pas pour qu que qui sa se ses son sur ta "
        "te tes toi ton tu un une vos votre vous"
    ),
    "german": (
        "aber als am an auch auf aus bei bin bis bist da dadurch daher darum das dass dein "
        "deine dem den der des dessen deshalb die dies dieser dieses doch dort du durch ein "
        "eine einem einen einer eines er es euer eure für hatte hatten hattest hattet hier "
        "hinter ich ihr ihre im in ist ja jede jedem jeden jeder jedes jener jenes jetzt kann "
        "kannst können könnt machen mein meine mit muß mußt musst müssen müßt nach nachdem "
        "nein nicht nun oder seid sein seine sich sie sind soll sollen sollst sollt sonst "
        "soweit sowie und unser unsere unter vom von vor wann warum was weiter weitere wenn "
        "wer werde werden werdet weshalb wie wieder wieso wir wird wirst wo woher wohin zu "
        "zum zur über"
    ),
    "spanish": (
        "a al algo algunas algunos ante antes como con contra cual cuando de del desde donde "
        "durante e el ella ellas ellos en entre era erais eran eras eres es esa esas ese eso "
        "esos esta estas este esto estos fue fueron fui la las le les lo los me mi mis mucho "
        "muchos muy nada ni no nos nosotros o os otra otros para pero poco por porque que "
        "quien quienes se sea sean ser si sido sin sobre sois somos son soy su sus también "
        "te tiene tengo ti tu tus un una uno unos vosotros y ya yo"
    ),
}


def fold(text: str) -> str:
    """Lowercase and strip accents (NFKD, combining marks dropped)."""
    text = text.lower()
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c))


@lru_cache(maxsize=16)
def _stemmer(language: str) -> Any:
    import Stemmer  # PyStemmer

    try:
        return Stemmer.Stemmer(language)
    except KeyError:
        raise InvalidArgumentError(
            f"no stemmer for language {language!r}; PyStemmer knows "
            f"{', '.join(sorted(Stemmer.algorithms()))}") from None


def stop_words(language: str) -> frozenset[str]:
    """The built-in stop words of ``language`` (folded), empty if none."""
    return frozenset(fold(w) for w in _STOP.get(language, "").split())


@dataclass(frozen=True)
class Analyzer:
    """How a text index cuts text into terms (see the module doc).

    ``language``: a Snowball language for stemming and the built-in stop
    words (None: neither); ``stem``/``stopwords`` switch them (``stopwords``
    may also be an explicit list of words); ``fold_accents``."""

    language: str | None = None
    stem: bool = True
    stopwords: bool | tuple[str, ...] = True
    fold_accents: bool = True

    def __post_init__(self) -> None:
        if self.language is not None:
            if not isinstance(self.language, str):
                raise InvalidArgumentError(f"language must be a str or None, got "
                                           f"{self.language!r}")
            object.__setattr__(self, "language", self.language.lower())
            if self.stem:
                _stemmer(self.language)
        sw = self.stopwords
        if not isinstance(sw, bool):
            if isinstance(sw, str) or not isinstance(sw, Iterable):
                raise InvalidArgumentError("stopwords must be a bool or a list of words")
            object.__setattr__(self, "stopwords", tuple(sorted({fold(str(w)) for w in sw})))

    # -- the recorded form ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"language": self.language, "stem": self.stem,
                "stopwords": list(self.stopwords) if isinstance(self.stopwords, tuple)
                else self.stopwords, "fold": self.fold_accents}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Analyzer:
        sw = d.get("stopwords", True)
        return cls(d.get("language"), bool(d.get("stem", True)),
                   tuple(sw) if isinstance(sw, list) else bool(sw), bool(d.get("fold", True)))

    # -- analysis ------------------------------------------------------------------------

    @property
    def _stops(self) -> frozenset[str]:
        sw = self.stopwords
        if isinstance(sw, tuple):
            return frozenset(sw)
        return stop_words(self.language) if sw and self.language else frozenset()

    def terms(self, text: str) -> list[str]:
        """The terms of ``text``, in order, repeats kept."""
        return _analyze(self, text)


@lru_cache(maxsize=64)
def _pipeline(an: Analyzer) -> Any:
    stops = an._stops
    stem = _stemmer(an.language).stemWords if (an.language and an.stem) else None
    do_fold = an.fold_accents
    findall = WORD.findall

    def run(text: str) -> list[str]:
        low = text.lower()
        if do_fold and not low.isascii():
            low = "".join(c for c in unicodedata.normalize("NFKD", low)
                          if not unicodedata.combining(c))
        words = findall(low)
        if any(len(w) > MAX_TERM for w in words):
            words = [w[:MAX_TERM] for w in words]
        if stops:
            words = [w for w in words if w not in stops]
        return stem(words) if stem is not None else words

    return run


def _analyze(an: Analyzer, text: str) -> list[str]:
    return _pipeline(an)(text)  # type: ignore[no-any-return]
