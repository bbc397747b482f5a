"""Amounts and dates as reps type them in chat, and how the bot shows them back."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.amounts import AmountError, format_amount, parse_amount
from handlers.dates import DateError, format_date, parse_date, weekday_name

# --- amounts ----------------------------------------------------------------------------------------

AMOUNTS = [
    ("300000", "300000"),
    ("300,000", "300000"),
    ("1,234,567.891", "1234567.89"),
    ("50万", "500000"),
    ("50万元", "500000"),
    ("50w", "500000"),
    ("50W", "500000"),
    ("1.2亿", "120000000"),
    ("30k", "30000"),
    ("30K", "30000"),
    ("1.5千", "1500"),
    ("3千万", "30000000"),
    ("2百万", "2000000"),
    ("￥300000", "300000"),
    ("¥5万", "50000"),
    ("RMB 5万", "50000"),
    ("人民币5万元", "50000"),
    ("5万块", "50000"),
    ("800块钱", "800"),
    ("300000元", "300000"),
    ("0.5万", "5000"),
    (".5万", "5000"),
    ("５０万", "500000"),
    ("３００，０００", "300000"),
    (" 50 万 ", "500000"),
    ("0", "0"),
    ("12.345", "12.35"),
    ("100000亿", "10000000000000"),
]


@pytest.mark.parametrize(("typed", "yuan"), AMOUNTS)
def test_typed_amount_is_read_as_yuan(typed: str, yuan: str) -> None:
    assert parse_amount(typed) == Decimal(yuan)


def test_amount_is_kept_to_the_fen() -> None:
    assert parse_amount("1.2亿").as_tuple().exponent == -2
    assert str(parse_amount("50万")) == "500000.00"


BAD_AMOUNTS = [
    "",
    "   ",
    "abc",
    "五十万",
    "-5万",
    "负5万",
    "¥-300",
    "1e5",
    "nan",
    "NaN",
    "inf",
    "3,00",
    "5万美元",
    "$500",
    "50万万",
    "1.2.3",
    "100001亿",
    "99999999999999",
]


@pytest.mark.parametrize("typed", BAD_AMOUNTS)
def test_unreadable_amount_is_refused_with_a_chinese_example(typed: str) -> None:
    with pytest.raises(AmountError) as caught:
        parse_amount(typed)
    assert "示例：50万" in str(caught.value)


def test_amount_error_is_a_value_error() -> None:
    assert issubclass(AmountError, ValueError)


def test_unreadable_amount_is_quoted_back() -> None:
    with pytest.raises(AmountError, match="金额看不懂：「abc」"):
        parse_amount("abc")


def test_negative_amount_says_why() -> None:
    with pytest.raises(AmountError, match="负数"):
        parse_amount("-5万")


def test_absurd_amount_hints_at_extra_zeros() -> None:
    with pytest.raises(AmountError, match="多打了零"):
        parse_amount("99999999999999")


def test_long_garbage_is_cut_short_in_the_reply() -> None:
    with pytest.raises(AmountError) as caught:
        parse_amount("这是一段很长很长的文字，不是金额，而是有人把整段话粘贴进来了")
    assert "…" in str(caught.value)
    assert len(str(caught.value)) < 60


FORMATTED = [
    (None, "—"),
    (0, "0元"),
    (3000, "3,000元"),
    (Decimal("3000.50"), "3,000.5元"),
    (Decimal("9999.99"), "9,999.99元"),
    (Decimal("9999.999"), "1万"),
    (10000, "1万"),
    (125000, "12.5万"),
    (500000, "50万"),
    (Decimal("123456.78"), "12.35万"),
    (99_990_000, "9999万"),
    (99_999_999, "1亿"),
    (100_000_000, "1亿"),
    (120_000_000, "1.2亿"),
    (Decimal("123456789012.34"), "1,234.57亿"),
    (-500000, "-50万"),
    (Decimal("NaN"), "—"),
]


@pytest.mark.parametrize(("value", "shown"), FORMATTED)
def test_amount_is_shown_the_way_reps_say_it(value: Decimal | int | None, shown: str) -> None:
    assert format_amount(value) == shown


@pytest.mark.parametrize("value", [0, 800, 3000, 50_000, 125_000, 500_000, 12_000_000, 120_000_000])
def test_typical_amounts_survive_a_round_trip_exactly(value: int) -> None:
    assert parse_amount(format_amount(value)) == value


@given(st.decimals(min_value=0, max_value=Decimal("1e12"), places=2))
def test_round_trip_is_within_the_shown_precision(value: Decimal) -> None:
    shown = format_amount(value)
    unit = Decimal(100_000_000) if shown.endswith("亿") else Decimal(10_000) if shown.endswith("万") else 1
    # Two decimals in the shown unit: off by at most half of the last digit.
    assert abs(parse_amount(shown) - value) <= unit * Decimal("0.005")


_amount_like = st.text(alphabet="0123456789０５.,，-万亿千百wWkK元块钱¥￥rmbRMB人民币 负e", max_size=12)


@settings(max_examples=500)
@given(st.one_of(st.text(), _amount_like))
def test_parse_amount_only_ever_raises_amount_error(text: str) -> None:
    try:
        result = parse_amount(text)
    except AmountError:
        return
    assert Decimal(0) <= result <= Decimal("1e13")
    assert result == result.quantize(Decimal("0.01"))


# --- dates ------------------------------------------------------------------------------------------

FRIDAY = date(2026, 11, 27)
assert FRIDAY.weekday() == 4

DATES_FROM_FRIDAY = [
    ("今天", date(2026, 11, 27)),
    ("明天", date(2026, 11, 28)),
    ("后天", date(2026, 11, 29)),
    ("大后天", date(2026, 11, 30)),
    ("昨天", date(2026, 11, 26)),
    ("3天后", date(2026, 11, 30)),
    ("3天以后", date(2026, 11, 30)),
    ("三天后", date(2026, 11, 30)),
    ("两天后", date(2026, 11, 29)),
    ("十天后", date(2026, 12, 7)),
    ("十五天之后", date(2026, 12, 12)),
    # Bare weekday: the next one on or after today.
    ("周五", date(2026, 11, 27)),
    ("周六", date(2026, 11, 28)),
    ("周一", date(2026, 11, 30)),
    ("周四", date(2026, 12, 3)),
    ("星期一", date(2026, 11, 30)),
    ("星期日", date(2026, 11, 29)),
    ("星期天", date(2026, 11, 29)),
    ("礼拜一", date(2026, 11, 30)),
    ("礼拜天", date(2026, 11, 29)),
    ("周5", date(2026, 11, 27)),
    # 本周 / 这周: this ISO week, even when already past.
    ("本周五", date(2026, 11, 27)),
    ("这周五", date(2026, 11, 27)),
    ("本周一", date(2026, 11, 23)),
    ("这个星期天", date(2026, 11, 29)),
    # 下周 / 下下周.
    ("下周一", date(2026, 11, 30)),
    ("下星期三", date(2026, 12, 2)),
    ("下个礼拜五", date(2026, 12, 4)),
    ("下周日", date(2026, 12, 6)),
    ("下下周二", date(2026, 12, 8)),
    ("上周一", date(2026, 11, 16)),
    ("上个星期五", date(2026, 11, 20)),
    # Month-day in the current year.
    ("12-05", date(2026, 12, 5)),
    ("12/05", date(2026, 12, 5)),
    ("12.5", date(2026, 12, 5)),
    ("12月5日", date(2026, 12, 5)),
    ("12月5号", date(2026, 12, 5)),
    ("１２－０５", date(2026, 12, 5)),
    ("10-28", date(2026, 10, 28)),
    # Full dates.
    ("2026-12-05", date(2026, 12, 5)),
    ("2026/12/5", date(2026, 12, 5)),
    ("2026年12月5日", date(2026, 12, 5)),
    ("20261205", date(2026, 12, 5)),
    ("２０２６年１２月５日", date(2026, 12, 5)),
    ("2025-01-01", date(2025, 1, 1)),
]


@pytest.mark.parametrize(("typed", "expected"), DATES_FROM_FRIDAY)
def test_typed_date_is_read_relative_to_today(typed: str, expected: date) -> None:
    assert parse_date(typed, FRIDAY) == expected


LATE_DECEMBER = date(2026, 12, 28)

ROLLOVER = [
    # A rep in late December writing 01-05 means next January.
    ("01-05", date(2027, 1, 5)),
    ("1月5日", date(2027, 1, 5)),
    ("12-30", date(2026, 12, 30)),
    # Up to 30 days back is still this year (logging a past visit)…
    ("12-01", date(2026, 12, 1)),
    ("11-28", date(2026, 11, 28)),
    # …further back rolls to next year.
    ("11-27", date(2027, 11, 27)),
    # An explicit year never rolls.
    ("2026-01-05", date(2026, 1, 5)),
]


@pytest.mark.parametrize(("typed", "expected"), ROLLOVER)
def test_month_day_far_in_the_past_means_next_year(typed: str, expected: date) -> None:
    assert parse_date(typed, LATE_DECEMBER) == expected


def test_leap_day_rolls_into_a_leap_year() -> None:
    assert parse_date("02-29", date(2027, 12, 28)) == date(2028, 2, 29)


def test_leap_day_in_a_common_year_is_refused() -> None:
    with pytest.raises(DateError, match="没有这一天"):
        parse_date("02-29", date(2027, 1, 10))


BAD_DATES = [
    "",
    "  ",
    "abc",
    "下周",
    "周八",
    "上上周一",
    "十零天后",
    "99999天后",
    "12",
    "12-05-03",
    "2026-12",
    "1205",
    "2026-1205",
]


@pytest.mark.parametrize("typed", BAD_DATES)
def test_unreadable_date_is_refused_with_a_chinese_example(typed: str) -> None:
    with pytest.raises(DateError) as caught:
        parse_date(typed, FRIDAY)
    assert "示例：明天、周五、下周一、12-05、2026-12-05" in str(caught.value)


@pytest.mark.parametrize("typed", ["02-30", "2026-02-30", "13-01", "00-10", "12-32", "20260230", "2026年4月31日"])
def test_impossible_calendar_date_is_refused(typed: str) -> None:
    with pytest.raises(DateError, match="没有这一天"):
        parse_date(typed, FRIDAY)


def test_unreadable_date_is_quoted_back() -> None:
    with pytest.raises(DateError, match="日期看不懂：「abc」"):
        parse_date("abc", FRIDAY)


def test_date_error_is_a_value_error() -> None:
    assert issubclass(DateError, ValueError)


FORMATTED_DATES = [
    (date(2026, 11, 27), "今天"),
    (date(2026, 11, 28), "明天"),
    (date(2026, 11, 26), "昨天"),
    (date(2026, 12, 5), "12-05 周六"),
    (date(2026, 11, 23), "11-23 周一"),
    (date(2027, 1, 5), "2027-01-05 周二"),
    (date(2025, 12, 31), "2025-12-31 周三"),
]


@pytest.mark.parametrize(("day", "shown"), FORMATTED_DATES)
def test_date_is_shown_the_way_colleagues_say_it(day: date, shown: str) -> None:
    assert format_date(day, FRIDAY) == shown


def test_tomorrow_across_new_year_is_still_tomorrow() -> None:
    assert format_date(date(2027, 1, 1), date(2026, 12, 31)) == "明天"


@pytest.mark.parametrize(
    ("day", "name"),
    [(date(2026, 11, 23 + i), n) for i, n in enumerate(["周一", "周二", "周三", "周四", "周五", "周六", "周日"])],
)
def test_weekday_names_are_the_short_chat_form(day: date, name: str) -> None:
    assert weekday_name(day) == name


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_full_dates_round_trip(day: date) -> None:
    assert parse_date(day.isoformat(), FRIDAY) == day


_date_like = st.text(
    alphabet="0123456789０１２-/.年月日号天后以之前今明昨大周星期礼拜本这个下一二两三四五六七八九十零",
    max_size=12,
)


@settings(max_examples=500)
@given(st.one_of(st.text(), _date_like), st.sampled_from([FRIDAY, LATE_DECEMBER, date(2028, 2, 29)]))
def test_parse_date_only_ever_raises_date_error(text: str, today: date) -> None:
    try:
        result = parse_date(text, today)
    except DateError:
        return
    assert isinstance(result, date)
