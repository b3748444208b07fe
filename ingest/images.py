"""Emote images: downloaded with a size limit and checked to be the image they claim to be.

The file name comes from the emote id and the checked type only, never from the URL or any
text, so a hostile URL or token cannot choose where a file lands.
"""

from __future__ import annotations

from .client import BilibiliClient
from .errors import ImageRejected

__all__ = ["IMAGE_TYPES", "emote_image"]

# content type -> (file extension, the bytes such a file starts with)
IMAGE_TYPES: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "image/png": (".png", (b"\x89PNG\r\n\x1a\n",)),
    "image/gif": (".gif", (b"GIF87a", b"GIF89a")),
    "image/jpeg": (".jpg", (b"\xff\xd8\xff",)),
    "image/webp": (".webp", (b"RIFF",)),
}


def emote_image(
    client: BilibiliClient, *, emote_id: int, url: str, max_bytes: int
) -> tuple[str, bytes]:
    """`(file name, bytes)` of one emote's image, e.g. `("1001.png", b"\\x89PNG...")`.

    Raises `ImageRejected` for a type that is not PNG, GIF, JPEG or WebP, for bytes that do not
    match the declared type, or for a body over `max_bytes`; transport errors after retries.
    """
    got = client.download(url, max_bytes=max_bytes, content_types=tuple(IMAGE_TYPES))
    known = IMAGE_TYPES.get(got.content_type)
    if known is None:
        raise ImageRejected(f"{url}: content type {got.content_type!r} is not an emote image",
                            endpoint=url)
    extension, signatures = known
    if not got.data.startswith(signatures):
        raise ImageRejected(f"{url}: the bytes are not a {got.content_type} image", endpoint=url)
    return f"{int(emote_id)}{extension}", got.data
