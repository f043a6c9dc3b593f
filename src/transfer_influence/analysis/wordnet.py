"""WordNet's noun hierarchy, read offline, for the hand-picked baseline of sources whose classes are
named by WordNet ids (the ImageNet layout: ``n02085620`` is the synset at byte offset 2085620 of
``data.noun``).

The reader parses the WordNet 3.0 database files directly, in their documented wndb(5) format:

* ``data.noun``: one synset a line, ``synset_offset lex_filenum ss_type w_cnt word lex_id [word
  lex_id...] p_cnt [pointer_symbol synset_offset pos source/target...] | gloss``, where ``w_cnt`` is
  two hexadecimal digits, ``p_cnt`` three decimal ones, and a synset's offset is the byte offset of
  its line, so a synset is read by slicing the file at its offset. The pointers followed here are
  ``@`` (hypernym), ``@i`` (instance hypernym), ``~`` (hyponym) and ``~i`` (instance hyponym),
  which always point to nouns.
* ``index.noun``: ``lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt
  synset_offset [synset_offset...]``, lemmas lower case with underscores for spaces, the offsets in
  sense order (the first is the most frequent sense).

nltk is not used: its current releases read extra files that Debian's WordNet package does not ship,
and a reader of two text files is simpler than a dependency. The files come from the Debian package
``wordnet-base`` (``/usr/share/wordnet``); ``$TRANSFER_INFLUENCE_WORDNET`` points elsewhere.

Each directory is opened once: its two files are read as bytes (about 20 MB, tens of milliseconds)
and only the synsets and lemmas asked for are parsed, each once (all 82,115 noun synsets, the
descendants of ``entity``, parse in about half a second).

Words are read as their first noun sense. Each CIFAR-10 class name's first sense is the object
pictured (``automobile`` is car, ``ship`` the vessel), so no alias table is kept; a target whose
first sense is not the one meant is named by its wnid or related with a mapping file instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from ..errors import InputError
from .relation import Relation

WORDNET_ENV = "TRANSFER_INFLUENCE_WORDNET"
DEFAULT_DIRECTORY = Path("/usr/share/wordnet")
DEBIAN_PACKAGE = "wordnet-base"
WNID = re.compile(r"n\d{8}")
"""A WordNet id as ImageNet names its classes: ``n`` and the noun synset's 8-digit offset."""
_FILES = ("data.noun", "index.noun")
_HYPERNYMS = frozenset({"@", "@i"})
_HYPONYMS = frozenset({"~", "~i"})


@dataclass(frozen=True)
class Synset:
    """One noun synset: its words (as written in ``data.noun``, underscores for spaces) and the
    offsets of its direct hypernyms and hyponyms, instance links included."""

    offset: int
    words: tuple[str, ...]
    hypernyms: tuple[int, ...]
    hyponyms: tuple[int, ...]


def parse_synset_line(line: str) -> Synset:
    """One ``data.noun`` line in the wndb(5) format (the gloss after ``|`` is not needed)."""
    fields = line.split(" | ", 1)[0].split()
    offset, word_count = int(fields[0]), int(fields[3], 16)
    words = tuple(fields[4 : 4 + 2 * word_count : 2])
    position = 4 + 2 * word_count
    pointer_count = int(fields[position])
    hypernyms: list[int] = []
    hyponyms: list[int] = []
    for start in range(position + 1, position + 1 + 4 * pointer_count, 4):
        symbol, target = fields[start], int(fields[start + 1])
        if symbol in _HYPERNYMS:
            hypernyms.append(target)
        elif symbol in _HYPONYMS:
            hyponyms.append(target)
    return Synset(offset, words, tuple(hypernyms), tuple(hyponyms))


def lemma_key(name: str) -> str:
    """A word as ``index.noun`` spells it: lower case, runs of spaces as one underscore (hyphens are
    kept, as WordNet writes ``t-shirt``)."""
    return "_".join(name.strip().lower().split())


class WordNet:
    """The noun database of one directory: synsets and lemmas parsed on first use, then kept."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._data = (directory / "data.noun").read_bytes()
        self._index = b"\n" + (directory / "index.noun").read_bytes()
        self._synsets: dict[int, Synset] = {}
        self._lemmas: dict[str, tuple[int, ...]] = {}

    def has_synset(self, offset: int) -> bool:
        """True when a synset line starts at this byte offset: wndb(5) begins every line with the
        offset of its first byte, so any other offset finds other text there."""
        return 0 <= offset < len(self._data) and self._data.startswith(b"%08d " % offset, offset)

    def synset(self, offset: int) -> Synset:
        cached = self._synsets.get(offset)
        if cached is not None:
            return cached
        if not self.has_synset(offset):
            raise KeyError(f"no noun synset at offset {offset:08d} in {self.directory / 'data.noun'}")
        end = self._data.find(b"\n", offset)
        line = self._data[offset : end if end >= 0 else len(self._data)].decode("utf-8")
        synset = self._synsets[offset] = parse_synset_line(line)
        return synset

    def senses(self, word: str) -> tuple[int, ...]:
        """The noun synsets of a word in sense order (most frequent first); empty when unknown."""
        key = lemma_key(word)
        if key not in self._lemmas:
            self._lemmas[key] = self._find_senses(key)
        return self._lemmas[key]

    def _find_senses(self, key: str) -> tuple[int, ...]:
        if not key:
            return ()
        start = self._index.find(b"\n" + key.encode("utf-8") + b" n ")
        if start < 0:
            return ()
        end = self._index.find(b"\n", start + 1)
        fields = self._index[start + 1 : end if end >= 0 else len(self._index)].decode("utf-8").split()
        synset_count = int(fields[2])
        return tuple(int(offset) for offset in fields[len(fields) - synset_count :])

    def synset_of(self, name: str) -> int | None:
        """A wnid's offset (when WordNet has that synset), else the first noun sense of the word."""
        if WNID.fullmatch(name):
            offset = int(name[1:])
            return offset if self.has_synset(offset) else None
        senses = self.senses(name)
        return senses[0] if senses else None

    def _closure(self, offset: int, hyponyms: bool) -> frozenset[int]:
        found: set[int] = set()
        stack = [offset]
        while stack:
            synset = self.synset(stack.pop())
            for linked in synset.hyponyms if hyponyms else synset.hypernyms:
                if linked not in found:
                    found.add(linked)
                    stack.append(linked)
        return frozenset(found)

    def descendants(self, offset: int) -> frozenset[int]:
        """Every synset below this one by hyponym and instance-hyponym links (itself excluded)."""
        return self._closure(offset, hyponyms=True)

    def ancestors(self, offset: int) -> frozenset[int]:
        """Every synset above this one by hypernym and instance-hypernym links (itself excluded)."""
        return self._closure(offset, hyponyms=False)


def wordnet_directory(directory: str | Path | None = None) -> Path:
    """The directory given, else ``$TRANSFER_INFLUENCE_WORDNET``, else Debian's ``/usr/share/wordnet``."""
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get(WORDNET_ENV) or DEFAULT_DIRECTORY)


def open_wordnet(directory: str | Path | None = None) -> WordNet:
    """The database of a directory, opened once per directory; missing files are one clear error."""
    path = wordnet_directory(directory).expanduser().resolve()
    missing = [name for name in _FILES if not (path / name).is_file()]
    if missing:
        raise InputError(
            f"WordNet files {', '.join(missing)} not found in {path}: install the Debian package "
            f"{DEBIAN_PACKAGE} (apt-get install {DEBIAN_PACKAGE}) or set ${WORDNET_ENV} to a directory "
            "holding the WordNet 3.0 database files data.noun and index.noun"
        )
    return _opened(path)


@lru_cache(maxsize=None)
def _opened(path: Path) -> WordNet:
    return WordNet(path)


def synset_of(name: str, directory: str | Path | None = None) -> int:
    """The synset offset of a wnid (``n02084071``) or of a word's first noun sense (``dog``, ``sea
    lion``); a name WordNet does not know is an :class:`InputError`."""
    wordnet = open_wordnet(directory)
    offset = wordnet.synset_of(name)
    if offset is None:
        raise InputError(f"WordNet ({wordnet.directory}) has no noun {name!r}")
    return offset


def descendants(offset: int, directory: str | Path | None = None) -> frozenset[int]:
    """Every synset below ``offset`` (hyponyms and instance hyponyms, at any depth)."""
    return open_wordnet(directory).descendants(offset)


def ancestors(offset: int, directory: str | Path | None = None) -> frozenset[int]:
    """Every synset above ``offset`` (hypernyms and instance hypernyms, at any depth)."""
    return open_wordnet(directory).ancestors(offset)


def words(offset: int, directory: str | Path | None = None) -> tuple[str, ...]:
    """The synset's words as ``data.noun`` writes them (underscores for spaces)."""
    return open_wordnet(directory).synset(offset).words


def wnid(offset: int) -> str:
    return f"n{offset:08d}"


def is_wnid(name: str) -> bool:
    return WNID.fullmatch(name) is not None


def wordnet_relation(
    target_names: Sequence[str], source_names: Sequence[str], directory: str | Path | None = None
) -> Relation:
    """Relate a source class (a wnid) to a target class (a wnid or a word, first noun sense) when it
    is the target's synset or one of its descendants: target ``dog`` keeps every dog breed.

    Checked before anything is read beyond the lemmas: every source must be a wnid, and target names
    WordNet does not know are refused together, with the way out (a mapping file)."""
    not_wnids = [name for name in source_names if not is_wnid(name)]
    if not_wnids:
        raise InputError(
            f"the WordNet relation needs source classes named by WordNet ids (n + 8 digits); "
            f"not ids: {not_wnids[:20]}; give the relation with --mapping MAPPING.yaml"
        )
    wordnet = open_wordnet(directory)
    targets = {target: wordnet.synset_of(target) for target in target_names}
    unknown = [target for target, offset in targets.items() if offset is None]
    if unknown:
        raise InputError(
            f"WordNet ({wordnet.directory}) knows no noun {unknown} among the target classes; name the "
            "target classes by WordNet ids or nouns, or give the relation with --mapping MAPPING.yaml "
            "(target class name → list of related source class names)"
        )
    below = {target: wordnet.descendants(offset) | {offset} for target, offset in targets.items() if offset is not None}
    related = {
        target: tuple(dict.fromkeys(source for source in source_names if int(source[1:]) in synsets))
        for target, synsets in below.items()
    }
    return Relation(
        related,
        f"WordNet relation ({wordnet.directory}: the target's synset and its hyponyms, first noun sense for words)",
    )
