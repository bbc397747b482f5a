"""Showing a secret without giving it away (config check, logs, chat replies, audit rows).

One format everywhere: the first few characters, to tell two keys apart, then ``******``; a value too
short to spare any characters shows none. Dependency-free, so configuration, adapters and the settings
rows can all use it without pulling in a platform.
"""

from __future__ import annotations

MASK = "******"


def mask_secret(value: str, keep: int = 4) -> str:
    """`value`'s first `keep` characters and ``******``; only ``******`` if that would reveal half of it."""
    return value[:keep] + MASK if keep > 0 and len(value) > 2 * keep else MASK
