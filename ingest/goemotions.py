"""GoEmotions (Demszky et al. 2020) texts with their emotion labels, in the layout of the
emotion seed's data (`../shared/data/goemotions/`):

    DIR/labels.txt                one label name per line (28: 27 emotions, then neutral)
    DIR/train.tsv, dev.tsv, test.tsv
                                  no header: text \\t comma-separated label ids \\t id

Any of the three split files may be missing (at least one is needed); other entries of DIR (a
SOURCE.txt, the ekman/ folder) are passed over and listed. Each file is UTF-8 (a BOM dropped),
else gb18030; lines end in LF, CRLF or CR. Lines are split on tabs only: a text may hold quotes.
A bad row (not 3 fields, an empty text or id, a label id that is not an integer of labels.txt,
an id twice in a split) is named with its file and line and left out; the good rows load.
Nothing here writes: `read_goemotions` returns rows and problems, the flow loads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .pairs import decode_text

__all__ = ["LABELS_FILE", "SPLITS", "EmotionText", "EmotionsRead", "read_emotion_labels", "read_goemotions",
           "split_lines"]

SPLITS = ("train", "dev", "test")
LABELS_FILE = "labels.txt"
_LABEL_ID = re.compile(r"-?[0-9]+")


@dataclass(frozen=True, slots=True)
class EmotionText:
    split: str
    text_id: str
    text: str
    labels: tuple[str, ...]  # names, in label id order, each once
    file: str
    line: int


@dataclass
class EmotionsRead:
    source: str
    labels: tuple[str, ...]  # the names of labels.txt; a label id is its index
    rows: list[EmotionText] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "file:line: what was wrong"
    splits: dict[str, int] = field(default_factory=dict)  # split -> good rows
    skipped_files: list[str] = field(default_factory=list)  # entries of the folder not read
    encodings: dict[str, str] = field(default_factory=dict)  # file -> encoding, when not UTF-8


def _decode(raw: bytes) -> tuple[str, str]:
    """The text and its encoding: UTF-8 (a BOM dropped), else gb18030; a ValueError when neither."""
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return decode_text(raw), "gb18030"


def split_lines(text: str) -> list[str]:
    """Lines ending in LF, CRLF or (when the text has no LF at all) CR. Unlike `str.splitlines`,
    no other character (U+2028, a form feed) ends a line, so a text holding one stays whole."""
    if "\n" not in text:
        return text.split("\r")
    return [line.removesuffix("\r") for line in text.split("\n")]


def read_emotion_labels(path: Path) -> tuple[tuple[str, ...], str]:
    """The label names of a labels.txt (one per line; label id = line number - 1) and its encoding;
    a ValueError naming the file when it is missing, unreadable, empty, has an empty line inside
    the list, or names a label twice."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file (the label names, one per line)")
    try:
        text, encoding = _decode(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    lines = [line.strip() for line in split_lines(text)]
    while lines and not lines[-1]:
        lines.pop()  # the final newline (or trailing blank lines)
    if "" in lines:  # a label id is its line: a blank line inside would shift every id after it
        raise ValueError(f"{path}:{lines.index('') + 1}: an empty line inside the list (a label's id is its line)")
    names = lines
    if not names:
        raise ValueError(f"{path}: no label names")
    seen: dict[str, int] = {}
    for label_id, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{path}: label {name!r} named twice (ids {seen[name]} and {label_id})")
        seen[name] = label_id
    return tuple(names), encoding


def _label_names(value: str, labels: tuple[str, ...]) -> tuple[str, ...]:
    """The names of comma-separated label ids, in id order, each once; a ValueError saying why not."""
    ids = []
    for piece in value.split(","):
        piece = piece.strip()
        if not _LABEL_ID.fullmatch(piece):
            raise ValueError(f"label id {piece!r} is not an integer" if piece else f"empty label id in {value!r}")
        label_id = int(piece)
        if not 0 <= label_id < len(labels):
            raise ValueError(f"label id {label_id} out of range 0..{len(labels) - 1}")
        ids.append(label_id)
    return tuple(labels[i] for i in sorted(set(ids)))


def _decode_lines(raw: bytes) -> tuple[list[str | None], str]:
    """The lines of a file and its encoding: the whole file as UTF-8, else as gb18030; when neither
    reads it whole, each line on its own (`mixed`), None for a line that neither reads, so one bad
    byte costs its line, not the file."""
    try:
        text, encoding = _decode(raw)
        return list(split_lines(text)), encoding
    except ValueError:
        pass
    lines: list[str | None] = []
    for piece in raw.removeprefix(b"\xef\xbb\xbf").split(b"\n"):
        piece = piece.removesuffix(b"\r")
        try:
            lines.append(_decode(piece)[0])
        except ValueError:
            lines.append(None)
    return lines, "mixed"


def _read_split(path: Path, split: str, labels: tuple[str, ...], out: EmotionsRead) -> None:
    try:
        lines, encoding = _decode_lines(path.read_bytes())
    except OSError as exc:
        out.errors.append(f"{path.name}: cannot read ({exc})")
        return
    if encoding != "utf-8":
        out.encodings[path.name] = encoding
    while lines and not (lines[-1] or "").strip() and lines[-1] is not None:
        lines.pop()  # the file's final newline (or trailing blank lines)
    seen: dict[str, int] = {}  # id -> its first good line
    good = 0
    for number, line in enumerate(lines, start=1):
        where = f"{path.name}:{number}"
        if line is None:
            out.errors.append(f"{where}: bytes that are neither UTF-8 nor gb18030")
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            what = "an empty line" if not line.strip() else f"{len(fields)} field(s)"
            out.errors.append(f"{where}: expected 3 tab-separated fields (text, label ids, id), got {what}")
            continue
        body, label_ids, text_id = fields[0], fields[1].strip(), fields[2].strip()
        if not body.strip():
            out.errors.append(f"{where}: empty text")
            continue
        if not label_ids:
            out.errors.append(f"{where}: no label id")
            continue
        if not text_id:
            out.errors.append(f"{where}: empty id")
            continue
        try:
            names = _label_names(label_ids, labels)
        except ValueError as exc:
            out.errors.append(f"{where}: {exc}")
            continue
        if text_id in seen:
            out.errors.append(f"{where}: id {text_id} listed again (first at {path.name}:{seen[text_id]}); "
                              "the first is kept")
            continue
        seen[text_id] = number
        out.rows.append(EmotionText(split=split, text_id=text_id, text=body, labels=names, file=path.name,
                                    line=number))
        good += 1
    out.splits[split] = good


def read_goemotions(folder: str | Path, source: str | None = None) -> EmotionsRead:
    """Every split file of `folder` with its good rows; `source` defaults to the folder's name.
    A ValueError when the folder has no split file, or labels.txt is missing, empty or repeats a name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    split_files = {split: folder / f"{split}.tsv" for split in SPLITS if (folder / f"{split}.tsv").is_file()}
    if not split_files:
        raise ValueError(f"{folder}: no split file ({', '.join(f'{s}.tsv' for s in SPLITS)})")
    labels, encoding = read_emotion_labels(folder / LABELS_FILE)
    out = EmotionsRead(source=source or folder.resolve().name, labels=labels)
    if encoding != "utf-8":
        out.encodings[LABELS_FILE] = encoding
    read = {LABELS_FILE, *(path.name for path in split_files.values())}
    out.skipped_files = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if p.name not in read)
    for split, path in split_files.items():
        _read_split(path, split, labels, out)
    return out
