"""Company-name keys for spotting two reps claiming the same customer (撞单).

Reps type the same customer in many ways — 「北京华为技术有限公司」, 「华为技术」, 「深圳市华为技术有限公司」,
「Huawei Technologies Co., Ltd.」, 「字節跳動」 for 「字节跳动」, 「网易（杭州）网络」 for 「网易杭州网络」 — and a
duplicate claim only gets caught if all of those collapse to one key. The key is for comparison only
and never shown to anyone, so it may look odd (no spaces, no punctuation, lower case, simplified
characters) as long as it is stable. Place names come from `handlers/regions.py` (the GB/T 2260 list).

Everything here is pure: no global state beyond the place-name table and the OpenCC converter, both
loaded once on first use; safe to call from any handler.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Final, TypeVar

from handlers.regions import is_places, match_region_prefix

__all__ = [
    "NAME_KEY_VERSION",
    "NEAR_MATCH_THRESHOLD",
    "find_near_matches",
    "normalise_company_name",
    "places_in",
    "similarity",
]

K = TypeVar("K")

#: Bump whenever `normalise_company_name` would give a stored name another key: start-up then re-keys
#: every organisation's customers (storage.rekey). 1: GB/T 2260 places, OpenCC, places in brackets or
#: after the brand (0 is every key made before versions were recorded).
NAME_KEY_VERSION: Final[int] = 1

#: Scores at or above this make the bot ask "你是不是指…？" / warn about a possible 撞单. 85 is where
#: one- or two-character typos in a 4–8 character Chinese name still score, while unrelated names
#: sharing a common word (科技, 银行) stay below it.
NEAR_MATCH_THRESHOLD: Final[float] = 85.0

# --------------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------------

# A region alone is the whole identity of 「北京银行」, 「南京银行」, 「青岛啤酒」, 「上海交通大学」: stripping it
# would make different customers collide. So a region prefix is kept when what follows is nothing but
# generic industry/institution words. Not exhaustive — it only has to cover names where the city *is*
# the brand.
_GENERIC_WORDS: Final = frozenset(
    [
        "银行", "商业银行", "农村商业银行", "农商银行", "农商行", "信用社", "农村信用社", "证券", "保险",
        "人寿", "财险", "信托", "基金", "期货", "租赁", "投资", "金融", "资产", "管理", "大学", "学院", "职业",
        "技术", "师范", "理工", "交通", "科技", "中学", "小学", "医院", "人民", "中医", "儿童", "妇幼",
        "保健院", "第一", "第二", "地铁", "轨道", "机场", "港", "港口", "港务", "航空", "铁路", "公交",
        "电视台", "广播", "电视", "日报", "晚报", "报业", "出版社", "图书馆", "博物馆", "啤酒", "汽车", "电气",
        "电力", "燃气", "水务", "自来水", "热力", "电网", "供电", "建工", "建设", "城建", "城投", "地产",
        "置业", "房地产", "医药", "药业", "制药", "钢铁", "铜业", "铝业", "黄金", "煤业", "烟草", "能源",
        "化工", "石化", "重工", "机械", "机电", "物流", "物产", "国资", "国投", "国际", "发展", "实业", "贸易",
        "商贸", "文旅", "旅游", "酒店", "宾馆", "饭店", "酒家", "百货", "商场", "超市", "电子", "电器", "通信",
        "移动", "电信", "联通", "广电", "信息", "软件", "网络", "数据", "环保", "环境", "农业", "食品", "乳业",
        "纺织", "服装", "市政", "市场", "规划", "设计院", "研究院", "医疗", "教育", "体育", "文化", "传媒",
        "新闻", "政府", "人民政府", "有线",
    ]
)  # fmt: skip
_GENERIC_MAX_LEN: Final = max(map(len, _GENERIC_WORDS))

# Contents of a bracket that only says where the entity sits, besides place names (those are
# `regions.is_places`): 阿里巴巴（中国）有限公司, Siemens (China) Co., Ltd. Compared after compaction, so
# 「Hong Kong」 and 「hongkong」 are the same.
_REGION_NOTES: Final = frozenset(
    {"中国", "中国大陆", "大陆", "亚太", "亚洲", "全球", "华东", "华南", "华北", "华中", "西南", "西北", "东北"}
    | {
        "china", "prc", "mainlandchina", "asia", "asiapacific", "apac", "hongkong", "hk", "macau",
        "macao", "taiwan", "beijing", "shanghai", "shenzhen", "guangzhou", "hangzhou", "suzhou",
        "chengdu", "wuhan", "xiamen", "tianjin", "chongqing", "singapore",
    }
)  # fmt: skip

# --------------------------------------------------------------------------------------------------
# Corporate suffixes
# --------------------------------------------------------------------------------------------------

# Longest first inside the alternation so 集团股份有限公司 goes in one bite. Stripping repeats, so
# 「控股集团有限公司」 loses 集团有限公司 and then 控股. 科技 is deliberately absent: 「华为科技」 and 「华为」
# can be different companies, and 科技 is too common to tell anything apart once removed.
_CN_SUFFIXES: Final = (
    "集团股份有限公司", "集团有限责任公司", "集团有限公司", "股份有限公司", "有限责任公司", "有限公司",
    "股份公司", "集团公司", "总公司", "有限合伙", "集团", "公司", "控股",
)  # fmt: skip
_EN_SUFFIXES: Final = (
    "incorporated", "corporation", "holdings", "limited", "company", "group", "gmbh", "corp", "ltd",
    "llc", "plc", "inc", "co",
)  # fmt: skip

# Trailing separators are swallowed with the suffix ("Co., Ltd." leaves nothing dangling).
_CN_SUFFIX_RE: Final = re.compile(r"(?:" + "|".join(_CN_SUFFIXES) + r")[\W_]*$")
# An English suffix must be a word of its own — 「Zinc」 does not end in 「inc」 — but may sit right
# after a Chinese character (「华为Ltd」) because Chinese has no spaces to separate it.
_EN_SUFFIX_RE: Final = re.compile(
    r"(?:(?<![^\W_])|(?<=[\u3400-\u4dbf\u4e00-\u9fff]))(?:"
    + "|".join(_EN_SUFFIXES)
    + r")[\W_]*$"
)

# A branch (分公司, 深圳分行, …) is a different customer from its head office: another buyer, another
# budget, often another rep's territory. So the branch word and its city are part of the key, and only
# the head-office name in front of it is normalised — 「华为技术有限公司深圳分公司」 and
# 「深圳市华为技术有限公司深圳分公司」 match each other but not 「华为技术有限公司」.
_BRANCH_RE: Final = re.compile(r"(分公司|分行|支行|办事处|分店)[\W_]*$")
# Inside a branch name, the head office ends at its last corporate word: 华为技术有限公司 | 深圳 | 分公司.
_HEAD_OFFICE_END_RE: Final = re.compile(r"(?:公司|集团|有限合伙)")

_BRACKETED_RE: Final = re.compile(r"[(\[【〔〖「『《]([^()\[\]【】〔〕〖〗「」『』《》]*)[)\]】〕〗」』》]")

# The rewrites interact at the edges (dropping 「有限公司」 can expose 「Ltd」, dropping punctuation can
# let characters recombine), so normalisation repeats until nothing changes. Every pass after the first
# only shortens the text, so this converges quickly; the cap is a seatbelt, not a tuning knob.
_MAX_PASSES: Final = 16


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


# Cached: a pure function of the text, and a batch asks twice for each name (the read it makes ahead,
# CommandSpec.reads_first, and the command itself), ~20 µs each.
@functools.lru_cache(maxsize=4096)
def normalise_company_name(name: str) -> str:
    """Return the 撞单 key for a company name.

    Two names with the same key are treated as the same customer. The key is idempotent — normalising a
    key returns it unchanged — because stored keys get re-normalised whenever the rules are re-run, and
    a key that drifted would silently stop matching. Text with no letters or digits gives 「」; callers
    decide whether that is an error.
    """
    key = name
    for _ in range(_MAX_PASSES):
        next_key = _normalise_once(key)
        if next_key == key:
            break
        key = next_key
    return key


def places_in(name: str) -> list[str]:
    """The places a name mentions, by short name, in order: 上海腾讯 → [上海], 江门市新会区… → [江门, 新会].

    The normalised key drops them; a rep who writes one means it, so it can tell apart two customers
    the key alone cannot (上海腾讯科技 / 深圳市腾讯计算机系统).
    """
    text = _compact(_fold(name))
    found: list[str] = []
    start = 0
    while start < len(text):
        region = match_region_prefix(text[start:])
        if region is None:
            start += 1
            continue
        if region[0] not in found:
            found.append(region[0])
        start += region[1]
    return found


def similarity(a_norm: str, b_norm: str) -> float:
    """Score 0–100 for how likely two *normalised* names are the same customer.

    Plain edit distance undersells the commonest case: a rep writes the short brand (华为) and the other
    the fuller name (华为技术). So one name containing the other scores at least 90, ranked by how much
    of the longer name it covers. A single shared character is not evidence, hence the 2-character
    minimum.
    """
    if not a_norm or not b_norm:
        return 0.0
    if a_norm == b_norm:
        return 100.0
    # Imported on use: 2 MB of RSS that a process answering only other commands never needs.
    from rapidfuzz import fuzz

    ratio = float(fuzz.ratio(a_norm, b_norm))
    if _one_slip(a_norm, b_norm):
        return max(ratio, _ONE_SLIP_SCORE)
    shorter, longer = sorted((a_norm, b_norm), key=len)
    if len(shorter) >= 2 and shorter in longer:
        # Stays below 100 so a containment never outranks an exact match.
        return max(ratio, 90.0 + ratio * 0.09)
    return ratio


# A one-character slip in the trade words of a name (华为技木 / 华为技术) scores just above the threshold.
_ONE_SLIP_SCORE: Final[float] = NEAR_MATCH_THRESHOLD + 3


def _one_slip(a: str, b: str) -> bool:
    """One character different (4+ long), inside the generic trade words that follow the same brand.

    华为技木 is 华为技术 mistyped: the brand 华为 agrees and the slip is in 技术. 断库前科技 / 断库中科技,
    北京银行 / 南京银行 and 中国银行 / 中信银行 differ in the brand: different companies, not a typo.
    """
    if len(a) != len(b) or len(a) < 4:
        return False
    diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diffs) != 1:
        return False
    slip = diffs[0]
    return any(_is_generic(name[start:]) for name in (a, b) for start in range(2, slip + 1))


def find_near_matches(
    query_norm: str,
    candidates: Iterable[tuple[K, str]],
    limit: int = 5,
    *,
    threshold: float = NEAR_MATCH_THRESHOLD,
) -> list[tuple[K, float]]:
    """Look-alike customers for a *normalised* query, best first, as ``(key, score)``.

    Exact matches are left out: an identical key is a definite 撞单 the caller has already handled, and
    listing it again under 「你是不是指」 would be noise. Ties keep the candidates' order, so callers
    that pass names oldest-first see the longest-standing claim first.
    """
    if not query_norm or limit <= 0:
        return []
    scored: list[tuple[K, float]] = []
    for key, name_norm in candidates:
        if name_norm == query_norm:
            continue
        score = similarity(query_norm, name_norm)
        if score >= threshold:
            scored.append((key, score))
    scored.sort(key=lambda pair: pair[1], reverse=True)
    return scored[:limit]


# --------------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------------


def _normalise_once(name: str) -> str:
    text = _fold(name)
    text = _drop_region_notes(text)
    branch = _BRANCH_RE.search(text)
    if branch is not None and branch.start() > 0:
        head, branch_place = _split_branch(text[: branch.start()])
        head_key = _head_office_key(head)
        if head_key:
            return head_key + branch_place + branch.group(1)
    return _head_office_key(text)


def _fold(text: str) -> str:
    """Width, compatibility forms, case and traditional characters folded: ＡＢＣ = abc, 字節跳動 = 字节跳动."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    if _HAN_RE.search(folded):
        folded = unicodedata.normalize("NFKC", _to_simplified(folded))
    return folded


_HAN_RE: Final = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@functools.cache
def _simplifier() -> Callable[[str], str]:
    """OpenCC's traditional → simplified conversion, loaded on the first Chinese name (7 MB installed)."""
    import opencc

    return opencc.OpenCC("t2s").convert


def _to_simplified(text: str) -> str:
    return _simplifier()(text)


def _compact(text: str) -> str:
    """Only letters and digits survive; spacing and punctuation vary too much between reps to mean anything.

    Combining marks go too: after NFKC, accented Latin letters are single characters already, and a
    stray mark left behind could otherwise recombine differently on the next pass.
    """
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def _drop_region_notes(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        return "" if _is_region_note(match.group(1)) else match.group(0)

    stripped = _BRACKETED_RE.sub(replace, text)
    # 「（北京）」 on its own is all the name there is; keep it rather than return nothing.
    return stripped if _compact(stripped) else text


def _is_region_note(inner: str) -> bool:
    note = _compact(inner)
    return note in _REGION_NOTES or is_places(note)


def _head_office_key(text: str) -> str:
    return _drop_inline_region(_strip_region_prefixes(_compact(_strip_corporate_suffixes(text))))


def _drop_inline_region(compact: str) -> str:
    """A place between the brand and its trade: 网易杭州网络 is 网易网络, as 网易（杭州）网络 is.

    Only when what follows the place is nothing but generic words (网络, 燃气, 科技) — then the place
    cannot be part of the brand — and at least two characters of brand stand before it.
    """
    for start in range(2, len(compact) - 1):
        region = match_region_prefix(compact[start:])
        if region is None:
            continue
        rest = compact[start + region[1] :]
        if rest and _is_generic(rest):
            return compact[:start] + rest
    return compact


def _strip_corporate_suffixes(text: str) -> str:
    while True:
        for pattern in (_CN_SUFFIX_RE, _EN_SUFFIX_RE):
            match = pattern.search(text)
            if match is not None and _compact(text[: match.start()]):
                text = text[: match.start()]
                break
        else:
            return text


def _strip_region_prefixes(compact: str) -> str:
    """Drop leading regions, possibly stacked (广东省深圳市…), unless the region is the brand."""
    while True:
        region = match_region_prefix(compact)
        if region is None:
            return compact
        base, end = region
        rest = compact[end:]
        if len(rest) == 1 and end == len(base):
            # 三明治 is a sandwich, not 三明 + 治: a bare place leaves a name of two characters at least.
            return compact
        if not rest:
            # Nothing but a place name: keep it, without 市/省, so 「北京市」 and 「北京」 still match.
            return base
        if _is_generic(rest):
            # 「北京市银行」 and 「北京银行」 are the same bank, so the admin suffix still goes.
            return base + rest
        compact = rest


def _is_generic(text: str) -> bool:
    """Whether ``text`` splits entirely into generic industry words (交通大学, 农村商业银行…)."""
    reachable = [True] + [False] * len(text)
    for end in range(1, len(text) + 1):
        for start in range(max(0, end - _GENERIC_MAX_LEN), end):
            if reachable[start] and text[start:end] in _GENERIC_WORDS:
                reachable[end] = True
                break
    return reachable[len(text)]


def _split_branch(body: str) -> tuple[str, str]:
    """Split the text before 分公司/分行 into head office and branch place.

    「华为技术有限公司深圳」 splits after the last 公司. Without a corporate word the branch can still be
    recognised by a trailing region (「招商银行深圳」); otherwise the whole body is the head office.
    The place loses its 市/省 so 「深圳市分公司」 and 「深圳分公司」 agree.
    """
    ends = [m.end() for m in _HEAD_OFFICE_END_RE.finditer(body)]
    if ends and _compact(body[: ends[-1]]):
        head, place = body[: ends[-1]], _compact(body[ends[-1] :])
        region = match_region_prefix(place)
        if region is not None and region[1] == len(place):
            place = region[0]
        return head, place
    compact = _compact(body)
    for start in range(1, len(compact)):
        region = match_region_prefix(compact[start:])
        if region is not None and start + region[1] == len(compact):
            return compact[:start], region[0]
    return body, ""
