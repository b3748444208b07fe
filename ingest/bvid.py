"""Bilibili's av ↔ BV id conversion (the 2024 algorithm for 51-bit aids)."""

from __future__ import annotations

__all__ = ["av2bv", "bv2av"]

_XOR = 23442827791579
_MASK = (1 << 51) - 1
_MAX_AID = 1 << 51
_ALPHABET = "FcwAPNKTMug3GV5Lj7EJnHpWsx4tb8haYeviqBz6rkCy12mUSDQX9RdoZf"
_BASE = len(_ALPHABET)


def _swap(chars: list[str]) -> list[str]:
    chars[3], chars[9] = chars[9], chars[3]
    chars[4], chars[7] = chars[7], chars[4]
    return chars


def av2bv(aid: int) -> str:
    """`170001` → `"BV17x411w7KC"`."""
    chars = list("BV1000000000")
    tmp = (_MAX_AID | aid) ^ _XOR
    i = len(chars) - 1
    while tmp > 0:
        chars[i] = _ALPHABET[tmp % _BASE]
        tmp //= _BASE
        i -= 1
    return "".join(_swap(chars))


def bv2av(bvid: str) -> int:
    """`"BV17x411w7KC"` → `170001`; a malformed id raises ValueError naming it."""
    if len(bvid) != 12 or not bvid.upper().startswith("BV1") or any(ch not in _ALPHABET for ch in bvid[3:]):
        raise ValueError(f"not a BV id: {bvid!r}")
    tmp = 0
    for ch in _swap(list(bvid))[3:]:
        tmp = tmp * _BASE + _ALPHABET.index(ch)
    return (tmp & _MASK) ^ _XOR
