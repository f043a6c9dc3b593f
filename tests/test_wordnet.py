"""The WordNet reader and the hand-picked baseline's WordNet relation: a tiny database written here
in the wndb(5) format, checked against its hand-built hierarchy; Debian's WordNet 3.0 files (when
installed) for ImageNet ids and the CIFAR-10 class names; and ``default_relation`` choosing WordNet
for sources named by WordNet ids, with one clear error for unknown targets or missing files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from transfer_influence.analysis.handpicked import default_relation, kept_classes
from transfer_influence.analysis.wordnet import (
    WORDNET_ENV,
    ancestors,
    descendants,
    open_wordnet,
    synset_of,
    wnid,
    wordnet_relation,
    words,
)
from transfer_influence.errors import InputError

HEADER = "  1 A tiny noun database in the WordNet 3.0 format, for tests.  \n  2   \n"


@dataclass(frozen=True)
class Entry:
    key: str
    words: tuple[str, ...]
    pointers: tuple[tuple[str, str, str], ...] = ()
    """(pointer symbol, key of the target entry or an 8-digit offset for other parts of speech, pos)."""


ENTRIES = (
    Entry("entity", ("entity",), (("~", "animal", "n"), ("~", "vehicle", "n"), ("~", "person", "n"))),
    Entry("animal", ("animal", "beast"), (("@", "entity", "n"), ("~", "dog", "n"), ("~", "cat", "n"), ("~", "sea_lion", "n"))),
    Entry(
        "dog",
        ("dog", "domestic_dog", "Canis_familiaris"),
        (("@", "animal", "n"), ("~", "chihuahua", "n"), ("~i", "lassie", "n"), ("+", "00000077", "v")),
    ),
    Entry("chihuahua", ("Chihuahua",), (("@", "dog", "n"),)),
    Entry("lassie", ("Lassie",), (("@i", "dog", "n"),)),
    Entry("cat", ("cat", "true_cat"), (("@", "animal", "n"),)),
    Entry("sea_lion", ("sea_lion",), (("@", "animal", "n"),)),
    Entry("vehicle", ("vehicle",), (("@", "entity", "n"), ("~", "car", "n"))),
    Entry(
        "car",
        ("car", "auto", "automobile", "machine", "motorcar", "motor_car", "wheels", "jalopy", "banger", "ride", "coupe"),
        (("@", "vehicle", "n"), ("%p", "wheel", "n")),
    ),
    Entry("wheel", ("wheel",), (("#p", "car", "n"),)),
    Entry("person", ("person",), (("@", "entity", "n"), ("~", "frump", "n"))),
    Entry("frump", ("frump", "dog"), (("@", "person", "n"),)),
)
"""entity → {animal → {dog → {Chihuahua, Lassie (instance)}, cat, sea lion}, vehicle → car, person →
frump}; the wheel is a part of the car (a meronym, not a hyponym); "dog" has two noun senses, the
animal first; the car has 11 words, so its word count is written in hexadecimal as ``0b``."""

INDEX = {"dog": ("dog", "frump"), "sea_lion": ("sea_lion",), "cat": ("cat",), "car": ("car",), "entity": ("entity",)}
"""Lemma → keys of its noun senses in sense order."""


def _data_line(entry: Entry, offsets: dict[str, int]) -> str:
    """One ``data.noun`` line: offset, lex_filenum, ss_type, w_cnt (hex), words with lex_id, p_cnt,
    pointers, gloss."""
    fields = [f"{offsets[entry.key]:08d}", "05", "n", f"{len(entry.words):02x}"]
    for word in entry.words:
        fields += [word, "0"]
    fields.append(f"{len(entry.pointers):03d}")
    for symbol, target, pos in entry.pointers:
        fields += [symbol, f"{offsets[target]:08d}" if target in offsets else target, pos, "0000"]
    return " ".join(fields) + f" | the {entry.key}  \n"


def write_wordnet(directory: Path) -> dict[str, int]:
    """The tiny database in ``directory``; its synsets' offsets by key. Every offset field has 8
    digits, so the line lengths (and hence the byte offsets) do not depend on the offsets' values."""
    directory.mkdir(parents=True, exist_ok=True)
    placeholder = {entry.key: 0 for entry in ENTRIES}
    offsets: dict[str, int] = {}
    position = len(HEADER.encode())
    for entry in ENTRIES:
        offsets[entry.key] = position
        position += len(_data_line(entry, placeholder).encode())
    (directory / "data.noun").write_text(HEADER + "".join(_data_line(e, offsets) for e in ENTRIES))
    index_lines = [
        f"{lemma} n {len(keys)} 2 @ ~ {len(keys)} 0 " + " ".join(f"{offsets[k]:08d}" for k in keys) + "  \n"
        for lemma, keys in sorted(INDEX.items())
    ]
    (directory / "index.noun").write_text(HEADER + "".join(index_lines))
    return offsets


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    directory = tmp_path / "wordnet"
    return directory, write_wordnet(directory)


# ---- (a) the reader on a hand-built database ---------------------------------------------------
def test_synset_of_reads_wnids_and_the_first_noun_sense_of_words(tiny: tuple[Path, dict[str, int]]) -> None:
    directory, offsets = tiny
    assert synset_of("dog", directory) == offsets["dog"]  # not the second sense, frump
    assert synset_of("Sea  Lion", directory) == offsets["sea_lion"]
    assert synset_of(wnid(offsets["frump"]), directory) == offsets["frump"]
    with pytest.raises(InputError, match="'unicorn'"):
        synset_of("unicorn", directory)
    with pytest.raises(InputError, match="n00000003"):
        synset_of("n00000003", directory)  # an offset inside the header, no synset line starts there
    with pytest.raises(InputError):
        synset_of(wnid(offsets["dog"] + 1), directory)


def test_descendants_ancestors_and_words_follow_the_hand_built_hierarchy(tiny: tuple[Path, dict[str, int]]) -> None:
    directory, o = tiny
    assert descendants(o["animal"], directory) == {o["dog"], o["chihuahua"], o["lassie"], o["cat"], o["sea_lion"]}
    assert descendants(o["dog"], directory) == {o["chihuahua"], o["lassie"]}  # the instance hyponym too
    assert descendants(o["car"], directory) == frozenset()  # the wheel is a part, not a kind
    assert descendants(o["entity"], directory) == set(o.values()) - {o["entity"], o["wheel"]}
    assert ancestors(o["lassie"], directory) == {o["dog"], o["animal"], o["entity"]}  # via the instance hypernym
    assert ancestors(o["frump"], directory) == {o["person"], o["entity"]}
    assert ancestors(o["entity"], directory) == frozenset()
    assert words(o["dog"], directory) == ("dog", "domestic_dog", "Canis_familiaris")
    assert len(words(o["car"], directory)) == 11


def test_each_directory_is_opened_once_and_the_env_var_picks_it(
    tiny: tuple[Path, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, offsets = tiny
    assert open_wordnet(directory) is open_wordnet(directory)
    monkeypatch.setenv(WORDNET_ENV, str(directory))
    assert open_wordnet() is open_wordnet(directory)
    assert synset_of("cat") == offsets["cat"]


def test_the_relation_keeps_each_targets_synset_and_its_hyponyms(tiny: tuple[Path, dict[str, int]]) -> None:
    directory, o = tiny
    sources = [wnid(o[key]) for key in ("entity", "chihuahua", "car", "wheel", "lassie", "frump", "dog", "cat")]
    relation = wordnet_relation(["dog", wnid(o["vehicle"]), "sea lion", "cat"], sources, directory)
    assert relation.related == {
        "dog": (wnid(o["chihuahua"]), wnid(o["lassie"]), wnid(o["dog"])),
        wnid(o["vehicle"]): (wnid(o["car"]),),
        "sea lion": (),
        "cat": (wnid(o["cat"]),),
    }
    assert relation.unmapped == ["sea lion"]
    assert "WordNet" in relation.origin
    assert kept_classes(relation, sources) == (1, 2, 4, 6, 7)


def test_targets_wordnet_does_not_know_are_refused_together(tiny: tuple[Path, dict[str, int]]) -> None:
    directory, o = tiny
    with pytest.raises(InputError, match=r"\['unicorn', 'n00000003'\].*--mapping"):
        wordnet_relation(["dog", "unicorn", "n00000003"], [wnid(o["dog"])], directory)
    with pytest.raises(InputError, match=r"not ids: \['dog'\].*--mapping"):
        wordnet_relation(["dog"], [wnid(o["dog"]), "dog"], directory)


# ---- (b) Debian's WordNet 3.0 files ------------------------------------------------------------
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGENET = {
    "n02690373": "airliner",
    "n02692877": "airship",
    "n02814533": "beach wagon",
    "n04285008": "sports car",
    "n02701002": "ambulance",
    "n03417042": "garbage truck",
    "n03930630": "pickup",
    "n03796401": "moving van",
    "n03095699": "container ship",
    "n02687172": "aircraft carrier",
    "n04273569": "speedboat",
    "n01530575": "brambling",
    "n02123045": "tabby",
    "n02129604": "tiger",
    "n02085620": "Chihuahua",
    "n02099601": "golden retriever",
    "n01641577": "bullfrog",
    "n02389026": "sorrel",
    "n02391049": "zebra",
    "n02422699": "impala",
    "n03792782": "mountain bike",
}
"""Real ImageNet-1k class ids: look-alikes that are not kinds of a CIFAR-10 class (an airship is no
airplane, a speedboat no ship, a tiger a big cat and not a true cat, a zebra no horse, an impala an
antelope and not a deer)."""


@pytest.fixture()
def debian() -> Path:
    directory = Path("/usr/share/wordnet")
    if not (directory / "data.noun").is_file():
        pytest.skip("Debian's WordNet files are not installed (apt-get install wordnet-base)")
    return directory


def test_dog_has_the_chihuahua_below_it_in_debians_wordnet(debian: Path) -> None:
    dog = synset_of("n02084071", debian)
    assert "dog" in words(dog, debian)
    assert 2085620 in descendants(dog, debian)
    assert dog in ancestors(2085620, debian)
    assert synset_of("dog", debian) == dog


def test_the_first_sense_of_each_cifar10_name_is_the_object(debian: Path) -> None:
    """No alias table is needed: each name's first noun sense is the thing pictured."""
    expected = {
        "airplane": "n02691156", "automobile": "n02958343", "bird": "n01503061", "cat": "n02121620",
        "deer": "n02430045", "dog": "n02084071", "frog": "n01639765", "horse": "n02374451",
        "ship": "n04194289", "truck": "n04490091",
    }  # fmt: skip
    assert {name: wnid(synset_of(name, debian)) for name in CIFAR10} == expected
    assert 2690373 in descendants(synset_of("airplane", debian), debian)  # airliner
    assert 2814533 in descendants(synset_of("automobile", debian), debian)  # beach wagon
    assert 3417042 in descendants(synset_of("truck", debian), debian)  # garbage truck
    assert 3095699 in descendants(synset_of("ship", debian), debian)  # container ship


def test_the_cifar10_relation_over_imagenet_ids_keeps_the_kinds_of_each_class(debian: Path) -> None:
    relation = wordnet_relation(CIFAR10, list(IMAGENET), debian)
    names = {target: [IMAGENET[s] for s in sources] for target, sources in relation.related.items()}
    assert names == {
        "airplane": ["airliner"],
        "automobile": ["beach wagon", "sports car", "ambulance"],
        "bird": ["brambling"],
        "cat": ["tabby"],
        "deer": [],
        "dog": ["Chihuahua", "golden retriever"],
        "frog": ["bullfrog"],
        "horse": ["sorrel"],
        "ship": ["container ship", "aircraft carrier"],
        "truck": ["garbage truck", "pickup", "moving van"],
    }
    assert relation.unmapped == ["deer"]


# ---- (c) the hand-picked baseline's default relation -------------------------------------------
def test_default_relation_uses_wordnet_for_sources_named_by_wordnet_ids(
    tiny: tuple[Path, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, o = tiny
    monkeypatch.setenv(WORDNET_ENV, str(directory))
    sources = [wnid(o[key]) for key in ("chihuahua", "car", "cat")]
    relation = default_relation(["image_folder"], ["dog", "car"], sources)
    assert relation.related == {"dog": (wnid(o["chihuahua"]),), "car": (wnid(o["car"]),)}
    assert "WordNet" in relation.origin
    with pytest.raises(InputError, match=r"\['unicorn'\].*--mapping"):
        default_relation(["image_folder"], ["dog", "unicorn"], sources)


def test_other_sources_are_told_of_both_the_mapping_and_wordnet() -> None:
    with pytest.raises(InputError, match="WordNet ids.*--mapping"):
        default_relation(["image_folder"], ["dog"], ["n02085620", "chihuahua"])


def test_missing_wordnet_files_are_one_error_naming_the_directory_package_and_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-wordnet"
    monkeypatch.setenv(WORDNET_ENV, str(missing))
    with pytest.raises(InputError) as error:
        default_relation(["image_folder"], ["dog"], ["n02085620"])
    message = str(error.value)
    assert str(missing) in message and "wordnet-base" in message and WORDNET_ENV in message
    assert "data.noun" in message and "index.noun" in message
