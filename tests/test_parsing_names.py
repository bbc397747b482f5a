"""The 撞单 key: how differently written company names collapse, and what must stay apart."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.names import (
    NEAR_MATCH_THRESHOLD,
    find_near_matches,
    normalise_company_name,
    places_in,
    similarity,
)

# (as a rep typed it, expected key)
KEY_CASES = [
    # The spec's anchor examples.
    ("北京华为技术有限公司", "华为技术"),
    ("华为技术", "华为技术"),
    ("华为技术有限公司", "华为技术"),
    ("深圳市华为技术有限公司", "华为技术"),
    ("Huawei Technologies Co., Ltd.", "huaweitechnologies"),
    ("阿里巴巴（中国）有限公司", "阿里巴巴"),
    ("上海 浦东发展银行股份有限公司", "浦东发展银行"),
    ("ＡＢＣ科技", "abc科技"),
    # Region prefixes, stacked and with admin suffixes.
    ("广东省深圳市腾讯计算机系统有限公司", "腾讯计算机系统"),
    ("新疆维吾尔自治区天山建设集团有限公司", "天山建设"),
    ("内蒙古伊利实业集团股份有限公司", "伊利实业"),
    ("杭州阿里巴巴集团控股有限公司", "阿里巴巴"),
    ("北京字节跳动科技有限公司", "字节跳动科技"),
    ("贵州茅台酒股份有限公司", "茅台酒"),
    ("四川长虹电器股份有限公司", "长虹电器"),
    ("珠海格力电器股份有限公司", "格力电器"),
    # Region notes in brackets of any width.
    ("字节跳动（北京）科技有限公司", "字节跳动科技"),
    ("华为技术(深圳)有限公司", "华为技术"),
    ("Siemens (China) Co., Ltd.", "siemens"),
    ("微软【中国】有限公司", "微软"),
    # A bracket that is not a place is kept as part of the name.
    ("中国平安保险（集团）股份有限公司", "中国平安保险"),
    # Suffixes, repeatedly.
    ("美的集团股份有限公司", "美的"),
    ("复星国际控股有限公司", "复星国际"),
    ("红杉资本投资合伙企业（有限合伙）", "红杉资本投资合伙企业"),
    # English forms.
    ("Apple Inc.", "apple"),
    ("Google LLC", "google"),
    ("BMW GmbH", "bmw"),
    ("Tencent Holdings Limited", "tencent"),
    ("ACME CO LTD", "acme"),
    ("The Boeing Company", "theboeing"),
    ("Zinc Corp", "zinc"),
    # Width, spacing, punctuation.
    ("ＨＵＡＷＥＩ　技术", "huawei技术"),
    ("小米·科技  有限公司", "小米科技"),
    ("「京东」世纪贸易有限公司", "京东世纪贸易"),
    ("华为Ltd", "华为"),
]


@pytest.mark.parametrize(("typed", "key"), KEY_CASES)
def test_typed_name_normalises_to_its_key(typed: str, key: str) -> None:
    assert normalise_company_name(typed) == key


SAME_CUSTOMER = [
    ("北京华为技术有限公司", "深圳市华为技术有限公司"),
    ("阿里巴巴（中国）有限公司", "阿里巴巴集团"),
    ("上海浦东发展银行股份有限公司", "浦东发展银行"),
    ("Huawei Technologies Co., Ltd.", "HUAWEI TECHNOLOGIES CO LTD"),
    ("ＡＢＣ科技有限公司", "abc 科技"),
    ("北京市银行", "北京银行股份有限公司"),
    ("招商银行股份有限公司深圳分行", "招商银行深圳分行"),
    ("华为技术有限公司深圳分公司", "深圳市华为技术有限公司深圳市分公司"),
]


@pytest.mark.parametrize(("a", "b"), SAME_CUSTOMER)
def test_different_spellings_of_one_customer_share_a_key(a: str, b: str) -> None:
    assert normalise_company_name(a) == normalise_company_name(b)


DIFFERENT_CUSTOMERS = [
    # The city is the brand: stripping it would merge different banks and breweries.
    ("北京银行", "南京银行"),
    ("青岛啤酒股份有限公司", "哈尔滨啤酒有限公司"),
    ("上海交通大学", "西安交通大学"),
    ("上海汽车集团股份有限公司", "北京汽车股份有限公司"),
    # 科技 tells companies apart.
    ("华为科技", "华为"),
    # 中国 is part of the brand, never a region prefix.
    ("中国银行", "银行"),
    ("华为技术有限公司深圳分公司", "华为技术有限公司"),
    ("华为技术有限公司深圳分公司", "华为技术有限公司上海分公司"),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT_CUSTOMERS)
def test_different_customers_keep_different_keys(a: str, b: str) -> None:
    assert normalise_company_name(a) != normalise_company_name(b)


def test_china_is_not_stripped_as_a_region_prefix() -> None:
    assert normalise_company_name("中国银行股份有限公司") == "中国银行"


def test_branch_office_keeps_its_city() -> None:
    assert normalise_company_name("北京华为技术有限公司上海分公司") == "华为技术上海分公司"


def test_branch_office_without_head_office_suffix_is_still_recognised() -> None:
    assert normalise_company_name("招商银行深圳分行") == "招商银行深圳分行"


@pytest.mark.parametrize("typed", ["北京", "北京市", "广东省", "公司", "有限公司", "（北京）", "Ltd"])
def test_name_that_is_only_a_region_or_suffix_is_not_emptied(typed: str) -> None:
    assert normalise_company_name(typed) != ""


def test_region_alone_matches_with_and_without_admin_suffix() -> None:
    assert normalise_company_name("北京市") == normalise_company_name("北京") == "北京"


@pytest.mark.parametrize("typed", ["", "   ", "!!!", "（）", "——"])
def test_text_without_letters_or_digits_gives_empty_key(typed: str) -> None:
    assert normalise_company_name(typed) == ""


def test_market_after_city_is_not_read_as_shi_suffix() -> None:
    # 北京市场调研 is 北京 + 市场调研, not 北京市 + 场调研.
    assert normalise_company_name("北京市场调研有限公司") == "市场调研"


def test_blockchain_after_city_is_not_read_as_qu_suffix() -> None:
    assert normalise_company_name("上海区块链科技有限公司") == "区块链科技"


# --- near matches -----------------------------------------------------------------------------------

NEAR = [
    ("华为", "华为技术"),
    ("阿里巴巴", "阿里巴巴网络技术"),
    ("腾讯计算机系统", "腾讯计算机系"),
    ("字节跳动科技", "字节跳动"),
    ("huaweitechnologies", "huaweitechnology"),
]


@pytest.mark.parametrize(("a", "b"), NEAR)
def test_look_alike_names_are_near_matches(a: str, b: str) -> None:
    assert similarity(a, b) >= NEAR_MATCH_THRESHOLD
    assert similarity(b, a) == similarity(a, b)


NOT_NEAR = [
    ("腾讯", "字节跳动"),
    ("华为技术", "中兴通讯"),
    ("华为科技", "小米科技"),
    ("招商银行", "平安银行"),
    ("apple", "google"),
    # One shared character is not evidence of anything.
    ("华", "华为技术"),
]


@pytest.mark.parametrize(("a", "b"), NOT_NEAR)
def test_unrelated_names_are_not_near_matches(a: str, b: str) -> None:
    assert similarity(a, b) < NEAR_MATCH_THRESHOLD


def test_identical_names_score_100_and_containment_scores_less() -> None:
    assert similarity("华为技术", "华为技术") == 100.0
    assert 90.0 <= similarity("华为", "华为技术") < 100.0


def test_empty_name_is_similar_to_nothing() -> None:
    assert similarity("", "华为") == 0.0
    assert similarity("", "") == 0.0


def test_near_matches_are_best_first_and_skip_the_exact_match() -> None:
    candidates = [
        (1, "华为终端有限"),
        (2, "字节跳动"),
        (3, "华为"),
        (4, "华为技术"),
    ]
    found = find_near_matches("华为", candidates)
    assert [key for key, _ in found] == [4, 1]
    assert found[0][1] >= found[1][1] >= NEAR_MATCH_THRESHOLD


def test_near_matches_respect_the_limit() -> None:
    candidates = [(i, f"华为{suffix}") for i, suffix in enumerate(["技术", "终端", "云", "数字", "海思"])]
    assert len(find_near_matches("华为", candidates, limit=2)) == 2
    assert find_near_matches("华为", candidates, limit=0) == []


def test_empty_query_has_no_near_matches() -> None:
    assert find_near_matches("", [(1, "华为")]) == []


def test_near_matches_accept_any_iterable_of_keys() -> None:
    found = find_near_matches("华为", ((f"id-{n}", n) for n in ["华为技术", "腾讯"]))
    assert [key for key, _ in found] == ["id-华为技术"]


# --- properties -------------------------------------------------------------------------------------

# Pieces of real names, so generated text actually exercises prefixes, suffixes, branches and brackets
# rather than only random code points.
_FRAGMENTS = [
    "北京", "北京市", "广东省", "深圳", "新疆维吾尔自治区", "中国", "华为", "技术", "银行", "市场",
    "区块链", "有限公司", "股份有限公司", "集团", "控股", "公司", "分公司", "分行", "科技", "（", "）",
    "(", ")", "【", "】", " ", "　", ",", ".", "co", "ltd", "Ltd.", "inc", "Group", "ＡＢＣ", "a",
    "ß", "é", "\u0301", "ᄀ", "ᅡ", "-", "·", "1", "１",
]  # fmt: skip
_name_like = st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map("".join)


@settings(max_examples=500)
@given(st.one_of(st.text(), _name_like))
def test_normalising_never_raises_and_is_idempotent(text: str) -> None:
    key = normalise_company_name(text)
    assert isinstance(key, str)
    assert normalise_company_name(key) == key


@given(st.text(), st.text())
def test_similarity_stays_in_range(a: str, b: str) -> None:
    assert 0.0 <= similarity(a, b) <= 100.0


# --- places from the GB/T 2260 list, traditional characters, one-character slips ----------------------

PLACE_CASES = [
    # A prefecture-level city without 市, and any division written in full.
    ("江门华为有限公司", "华为"),
    ("江门市新会区华润燃气有限公司", "华润燃气"),
    ("广东省江门市新会区华润燃气有限公司", "华润燃气"),
    ("浙江省湖州市长兴县天能电池有限公司", "天能电池"),
    ("延边朝鲜族自治州长白山旅游有限公司", "长白山旅游"),
    ("杭州娃哈哈集团有限公司", "娃哈哈"),
    # A short county name is an everyday word or a brand: only its full name is a place.
    ("东方财富信息股份有限公司", "东方财富信息"),
    ("阿里巴巴集团控股有限公司", "阿里巴巴"),
    ("金山办公软件有限公司", "金山办公软件"),
    ("平安银行股份有限公司", "平安银行"),
    # A place leaves a name of two characters at least.
    ("三明治", "三明治"),
]


@pytest.mark.parametrize(("typed", "key"), PLACE_CASES)
def test_place_names_from_the_full_list_are_read(typed: str, key: str) -> None:
    assert normalise_company_name(typed) == key


SAME_CUSTOMER_WRITTEN_APART = [
    # Traditional and simplified characters.
    ("字節跳動", "字节跳动"),
    ("騰訊科技（深圳）有限公司", "腾讯科技有限公司"),
    # A place in brackets, inline after the brand, or in front.
    ("网易（杭州）网络有限公司", "网易杭州网络有限公司"),
    ("江门市新会区华润燃气有限公司", "华润燃气（江门新会）有限公司"),
    ("华润燃气（江门市新会区）有限公司", "新会区华润燃气有限公司"),
]


@pytest.mark.parametrize(("a", "b"), SAME_CUSTOMER_WRITTEN_APART)
def test_one_customer_written_apart_shares_a_key(a: str, b: str) -> None:
    assert normalise_company_name(a) == normalise_company_name(b)


SHARE_A_WORD = [
    ("招商银行", "招商证券"), ("中国银行", "中国农业银行"), ("北京银行", "南京银行"), ("中国银行", "中信银行"),
    ("断库前科技", "断库中科技"),
]  # fmt: skip


@pytest.mark.parametrize(("a", "b"), SHARE_A_WORD)
def test_companies_that_share_a_word_are_neither_one_key_nor_look_alikes(a: str, b: str) -> None:
    a_norm, b_norm = normalise_company_name(a), normalise_company_name(b)
    assert a_norm != b_norm
    assert similarity(a_norm, b_norm) < NEAR_MATCH_THRESHOLD


@pytest.mark.parametrize(("a", "b"), [("华为技木", "华为技术"), ("华润燃汽", "华润燃气")])
def test_a_one_character_slip_in_a_longer_name_is_a_look_alike(a: str, b: str) -> None:
    assert similarity(a, b) >= NEAR_MATCH_THRESHOLD


@pytest.mark.parametrize(
    ("typed", "places"),
    [("上海腾讯", ["上海"]), ("江门市新会区华润燃气", ["江门", "新会"]), ("华润燃气（江门）", ["江门"]),
     ("华为", [])],
)
def test_places_in_a_name_are_found_by_short_name(typed: str, places: list[str]) -> None:
    assert places_in(typed) == places
