"""Labelled image + text pairs for the sentiment model, in the layout of the multimodal seed's data
(`../shared/data/ecnu_mm_sentiment/`):

    DIR/train.txt                 guid,tag        (tag: positive | neutral | negative)
    DIR/test_without_label.txt    guid,tag        (tag: null or empty: imported unlabelled)
    DIR/data/<guid>.jpg           the image
    DIR/data/<guid>.txt           the text, UTF-8, else gb18030 (GBK's superset)

Every `*.txt` in DIR whose first line is `guid,tag` is a list; other text files (a SOURCE.txt)
are passed over and said so. A bad row (a missing field, an unknown tag, a guid listed twice, a
missing or unreadable image or text) is named with its list file and line and left out; the good
rows load. Nothing here writes: `read_pairs` returns rows and problems, the flow loads them.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LABELS", "Pair", "PairsRead", "decode_text", "read_pairs"]

LABELS = ("positive", "neutral", "negative")
UNLABELLED = {"", "null", "none"}
HEADER = ("guid", "tag")


@dataclass(frozen=True, slots=True)
class Pair:
    guid: str
    text: str
    image_path: str
    image_sha256: str
    label: str | None
    list_file: str


@dataclass
class PairsRead:
    source: str
    pairs: list[Pair] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "file:line: what was wrong"
    lists: dict[str, int] = field(default_factory=dict)  # list file -> good rows
    skipped_files: list[str] = field(default_factory=list)  # *.txt that are not guid,tag lists


def decode_text(raw: bytes) -> str:
    """UTF-8 (a BOM dropped), else gb18030; a ValueError when neither decodes."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError("neither UTF-8 nor gb18030")


def _image_sha256(path: Path) -> str:
    """The file's sha256 after Pillow has read it whole (a truncated or non-image file raises)."""
    from PIL import Image

    raw = path.read_bytes()
    with Image.open(io.BytesIO(raw)) as image:
        image.load()
    return hashlib.sha256(raw).hexdigest()


def read_pairs(folder: str | Path, *, source: str | None = None) -> PairsRead:
    """Every list of `folder` with its pairs; `source` defaults to the folder's name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    data = folder / "data"
    out = PairsRead(source=source or folder.resolve().name)
    lists = sorted(p for p in folder.glob("*.txt") if p.is_file())
    seen: dict[str, str] = {}  # guid -> where it was first listed
    for path in lists:
        raw = path.read_bytes()
        try:
            lines = decode_text(raw).splitlines()
        except ValueError as exc:
            out.errors.append(f"{path.name}: {exc}")
            continue
        if not lines or tuple(c.strip().lower() for c in lines[0].split(",")) != HEADER:
            out.skipped_files.append(path.name)
            continue
        good = 0
        for number, line in enumerate(lines[1:], start=2):
            where = f"{path.name}:{number}"
            if not line.strip():
                continue
            fields = [f.strip() for f in line.split(",")]
            if len(fields) != 2 or not fields[0]:
                out.errors.append(f"{where}: expected 'guid,tag', got {line!r}")
                continue
            guid, tag = fields[0], fields[1].lower()
            if tag in UNLABELLED:
                label = None
            elif tag in LABELS:
                label = tag
            else:
                out.errors.append(f"{where}: unknown tag {fields[1]!r} (expected one of {', '.join(LABELS)} or null)")
                continue
            if guid in seen:
                out.errors.append(f"{where}: guid {guid} listed again (first at {seen[guid]}); the first is kept")
                continue
            seen[guid] = where
            text_file, image_file = data / f"{guid}.txt", data / f"{guid}.jpg"
            try:
                text = decode_text(text_file.read_bytes()).strip()
            except FileNotFoundError:
                out.errors.append(f"{where}: guid {guid}: no text file {text_file}")
                continue
            except ValueError as exc:
                out.errors.append(f"{where}: guid {guid}: text {text_file} is {exc}")
                continue
            try:
                digest = _image_sha256(image_file)
            except FileNotFoundError:
                out.errors.append(f"{where}: guid {guid}: no image file {image_file}")
                continue
            except Exception as exc:  # PIL raises several kinds for a file it cannot read
                out.errors.append(f"{where}: guid {guid}: image {image_file} is unreadable ({exc})")
                continue
            out.pairs.append(Pair(guid=guid, text=text, image_path=str(image_file.resolve()), image_sha256=digest,
                                  label=label, list_file=path.name))
            good += 1
        out.lists[path.name] = good
    if not out.lists:
        raise ValueError(f"{folder}: no guid,tag list (a *.txt whose first line is 'guid,tag')")
    return out
