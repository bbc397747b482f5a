"""Place names of China, for reading them out of company names (江门市新会区华润燃气, 网易（杭州）网络).

Provinces and the cities reps write without 市 are listed here; every prefecture and county comes from
`data/gb2260_regions.tsv` (GB/T 2260 codes; source and licence in its header and LICENSE file), read
once on first use. Two strengths of evidence:

- *strong* names may stand alone at the start of a name: provinces and prefecture-level cities
  (江门华为 is 华为 in 江门).
- every other division (counties, districts, 地区, 盟, 自治州) counts only written in full (新会区,
  阿里地区): their short forms are everyday words and brands too (阿里巴巴, 东方财富, 平安银行). Inside a
  bracket that holds nothing but places (（江门新会）) short forms count as well.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Final

# Every provincial-level division, by its short name. The full name is the short name plus one of
# ADMIN_SUFFIXES (广东省, 北京市, 新疆维吾尔自治区, 香港特别行政区 ...).
_PROVINCIAL: Final = (
    "北京", "天津", "上海", "重庆",
    "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建", "江西", "山东", "河南",
    "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海", "台湾",
    "内蒙古", "广西", "西藏", "宁夏", "新疆",
    "香港", "澳门",
)  # fmt: skip

# County-level cities that customers' registered names commonly start with, written without 市.
_COUNTY_CITIES: Final = ("昆山", "义乌", "江阴", "张家港", "常熟", "慈溪", "余姚", "晋江", "石狮")

ADMIN_SUFFIXES: Final = (
    "维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市", "区",
)  # fmt: skip

# Words that start with an admin-suffix character. 「北京市场调研」 is 北京 + 市场调研, not 北京市 + 场调研,
# and 「上海区块链」 is 上海 + 区块链.
NOT_ADMIN_SUFFIX: Final = ("市场", "市政", "区块链", "区域")

# How a division's full name ends; the short name is what comes before (新会区 → 新会).
_DIVISION_SUFFIXES: Final = ("地区", "新区", "林区", "特区", "市", "区", "县", "旗", "盟")
_AUTONOMOUS: Final = ("自治州", "自治县", "自治旗")
# The peoples named in autonomous divisions (延边朝鲜族自治州 → 延边, 伊犁哈萨克自治州 → 伊犁).
_PEOPLES: Final = (
    "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶", "白", "土家", "哈尼",
    "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "拉祜", "水", "东乡", "纳西", "景颇", "柯尔克孜", "土", "达斡尔",
    "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克",
    "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔", "独龙", "鄂伦春", "赫哲", "门巴", "珞巴",
    "基诺",
)  # fmt: skip


@dataclass(frozen=True)
class RegionTable:
    # First character → strong names, longest first.
    strong: dict[str, tuple[str, ...]]
    # First character → (full name, short name) of the divisions that count only in full, longest first.
    full: dict[str, tuple[tuple[str, str], ...]]
    # Every name, short or full, that may make up a bracket of places.
    words: frozenset[str]
    longest: int


def short_name(full: str) -> str | None:
    """新会区 → 新会, 延边朝鲜族自治州 → 延边; None when too little is left to be a name (义县, 城区)."""
    if full.endswith(_AUTONOMOUS):
        for end in range(2, len(full)):
            if full[end:].startswith(_PEOPLES):
                return full[:end]
        return None
    for suffix in _DIVISION_SUFFIXES:
        if full.endswith(suffix) and len(full) - len(suffix) >= 2:
            return full[: -len(suffix)]
    return None


def _by_first(names: list[str]) -> dict[str, tuple[str, ...]]:
    grouped: dict[str, list[str]] = {}
    for name in sorted(set(names), key=len, reverse=True):
        grouped.setdefault(name[0], []).append(name)
    return {ch: tuple(group) for ch, group in grouped.items()}


@functools.cache
def region_table() -> RegionTable:
    """The place names, read from the data file the first time a company name is normalised."""
    text = resources.files("handlers").joinpath("data/gb2260_regions.tsv").read_text(encoding="utf-8")
    strong = [*_PROVINCIAL, *_COUNTY_CITIES]
    full: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        _code, level, name = line.split("\t")
        short = short_name(name)
        if short is None:
            continue
        if level == "地级" and name.endswith("市"):
            strong.append(short)
        else:
            full.append((name, short))
    grouped_full: dict[str, list[tuple[str, str]]] = {}
    for pair in sorted(set(full), key=lambda p: len(p[0]), reverse=True):
        grouped_full.setdefault(pair[0][0], []).append(pair)
    words = frozenset([*strong, *(f for f, _ in full), *(s for _, s in full)])
    return RegionTable(
        strong=_by_first(strong),
        full={ch: tuple(group) for ch, group in grouped_full.items()},
        words=words,
        longest=max(map(len, words)),
    )


def match_region_prefix(text: str) -> tuple[str, int] | None:
    """The region at the start of `text` (its short name) and where it ends (after any 省/市/区…)."""
    if not text:
        return None
    table = region_table()
    best: tuple[str, int] | None = None
    for base in table.strong.get(text[0], ()):
        if text.startswith(base):
            end = len(base) + _admin_suffix_length(text[len(base) :])
            if best is None or end > best[1]:
                best = (base, end)
    for full, short in table.full.get(text[0], ()):
        if text.startswith(full) and not text[len(short) :].startswith(NOT_ADMIN_SUFFIX):
            if best is None or len(full) > best[1]:
                best = (short, len(full))
            break
    return best


def _admin_suffix_length(after: str) -> int:
    if after.startswith(NOT_ADMIN_SUFFIX):
        return 0
    for suffix in ADMIN_SUFFIXES:
        if after.startswith(suffix):
            return len(suffix)
    return 0


def is_places(text: str) -> bool:
    """Whether `text` (compacted) is nothing but place names, short or full: 江门新会, 广东深圳, 杭州."""
    if not text:
        return False
    table = region_table()
    reachable = [True] + [False] * len(text)
    for start in range(len(text)):
        if not reachable[start]:
            continue
        for end in range(start + 2, min(len(text), start + table.longest) + 1):
            if text[start:end] in table.words:
                reachable[end] = True
                reachable[end + _admin_suffix_length(text[end:])] = True
    return reachable[len(text)]
