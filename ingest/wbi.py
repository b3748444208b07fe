"""WBI request signing, as Bilibili's web client does it (and the local server checks it)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

__all__ = ["keys_from_nav", "mixin_key", "sign", "verify"]

_TAB = [46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42,
        19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51,
        30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11, 36, 20, 34, 44, 52]
_DROP = str.maketrans("", "", "!'()*")


def mixin_key(img_key: str, sub_key: str) -> str:
    """The 32-character key mixed from the two keys of `nav`'s `wbi_img`."""
    both = img_key + sub_key
    return "".join(both[i] for i in _TAB)[:32]


def keys_from_nav(data: Mapping[str, Any]) -> tuple[str, str]:
    """`(img_key, sub_key)` from the `data` of `/x/web-interface/nav`."""
    img = data["wbi_img"]
    return (img["img_url"].rsplit("/", 1)[-1].split(".")[0],
            img["sub_url"].rsplit("/", 1)[-1].split(".")[0])


def _w_rid(params: Mapping[str, str], mixin: str) -> str:
    query = urlencode(sorted(params.items()), quote_via=quote)
    return hashlib.md5((query + mixin).encode()).hexdigest()


def sign(
    params: Mapping[str, Any], img_key: str, sub_key: str, wts: int | None = None
) -> dict[str, str]:
    """The params to send: cleaned values plus `wts` and `w_rid`."""
    signed = {k: str(v).translate(_DROP) for k, v in params.items()}
    signed["wts"] = str(int(time.time()) if wts is None else wts)
    signed["w_rid"] = _w_rid(signed, mixin_key(img_key, sub_key))
    return signed


def verify(params: Mapping[str, str], img_key: str, sub_key: str) -> bool:
    """Whether received query params carry a correct `w_rid` for these keys."""
    rest = {k: v for k, v in params.items() if k != "w_rid"}
    if "wts" not in rest or "w_rid" not in params:
        return False
    rest = {k: v.translate(_DROP) for k, v in rest.items()}
    return params["w_rid"] == _w_rid(rest, mixin_key(img_key, sub_key))
