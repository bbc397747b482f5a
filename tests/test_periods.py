"""Periods as managers type them: one reading for 目标, 看板, the reports and the charts."""

from __future__ import annotations

from datetime import date

import pytest

from handlers.commands import UserError
from handlers.periods import is_bare_year, looks_like_period, parse_period, period_from_key

TODAY = date(2026, 12, 9)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "kind", "start", "end", "key"),
    [
        ("本周", "week", date(2026, 12, 7), date(2026, 12, 14), "2026-W50"),
        ("上周", "week", date(2026, 11, 30), date(2026, 12, 7), "2026-W49"),
        ("下周", "week", date(2026, 12, 14), date(2026, 12, 21), "2026-W51"),
        ("本月", "month", date(2026, 12, 1), date(2027, 1, 1), "2026-12"),
        ("上月", "month", date(2026, 11, 1), date(2026, 12, 1), "2026-11"),
        ("下月", "month", date(2027, 1, 1), date(2027, 2, 1), "2027-01"),
        ("本季", "quarter", date(2026, 10, 1), date(2027, 1, 1), "2026Q4"),
        ("上季", "quarter", date(2026, 7, 1), date(2026, 10, 1), "2026Q3"),
        ("本年", "year", date(2026, 1, 1), date(2027, 1, 1), "2026"),
        ("今年", "year", date(2026, 1, 1), date(2027, 1, 1), "2026"),
        ("明年", "year", date(2027, 1, 1), date(2028, 1, 1), "2027"),
        ("2027", "year", date(2027, 1, 1), date(2028, 1, 1), "2027"),
        ("2027Q1", "quarter", date(2027, 1, 1), date(2027, 4, 1), "2027Q1"),
        ("2027q4", "quarter", date(2027, 10, 1), date(2028, 1, 1), "2027Q4"),
        ("2027年Q1", "quarter", date(2027, 1, 1), date(2027, 4, 1), "2027Q1"),
        ("2027年第2季度", "quarter", date(2027, 4, 1), date(2027, 7, 1), "2027Q2"),
        ("2027年第三季度", "quarter", date(2027, 7, 1), date(2027, 10, 1), "2027Q3"),
        ("2027-03", "month", date(2027, 3, 1), date(2027, 4, 1), "2027-03"),
        ("2027年3月", "month", date(2027, 3, 1), date(2027, 4, 1), "2027-03"),
        ("２０２７－０３", "month", date(2027, 3, 1), date(2027, 4, 1), "2027-03"),
        ("12月", "month", date(2026, 12, 1), date(2027, 1, 1), "2026-12"),
        ("3月", "month", date(2027, 3, 1), date(2027, 4, 1), "2027-03"),  # half a year gone → next year's
        ("9月", "month", date(2026, 9, 1), date(2026, 10, 1), "2026-09"),
        ("2027W05", "week", date(2027, 2, 1), date(2027, 2, 8), "2027-W05"),
        ("2027年第5周", "week", date(2027, 2, 1), date(2027, 2, 8), "2027-W05"),
    ],
)
def test_a_period_reads_as_its_days_and_key(text: str, kind: str, start: date, end: date, key: str) -> None:
    period = parse_period(text, TODAY)
    assert (period.kind, period.start, period.end, period.key) == (kind, start, end, key)
    assert period_from_key(key) == period


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("9999-12", "超出范围"),
        ("1999", "超出范围"),
        ("2101Q1", "超出范围"),
        ("2027Q9", "只有 Q1–Q4"),
        ("2027Q0", "只有 Q1–Q4"),
        ("2027年第五季度", "只有 Q1–Q4"),
        ("13月", "只有 1–12 月"),
        ("2027-00", "只有 1–12 月"),
        ("2027-13", "只有 1–12 月"),
        ("2027W53", "没有第 53 周"),
        ("下下下月", "看不懂"),
    ],
)
def test_a_bad_period_is_refused_in_chinese_with_an_example(text: str, says: str) -> None:
    with pytest.raises(UserError) as refused:
        parse_period(text, TODAY, example="看板 2027Q1")
    assert says in refused.value.message
    assert "示例：看板 2027Q1" in refused.value.text()


def test_labels_leave_out_the_current_year() -> None:
    assert parse_period("3月", date(2027, 1, 5)).label(date(2027, 1, 5)) == "3月"
    assert parse_period("2027-03", TODAY).label(TODAY) == "2027年3月"
    assert parse_period("2027Q1", TODAY).label(TODAY) == "2027年第1季度"
    assert parse_period("本季", TODAY).label(TODAY) == "第4季度"
    assert parse_period("本年", TODAY).label(TODAY) == "2026年"
    assert parse_period("本周", TODAY).label(TODAY) == "第50周（12月7日起）"


def test_a_period_knows_what_it_splits_from_and_into() -> None:
    march = parse_period("2027-03", TODAY)
    assert march.parent() == parse_period("2027Q1", TODAY)
    assert march.parent().parent() == parse_period("2027", TODAY)  # type: ignore[union-attr]
    assert [q.key for q in parse_period("2027", TODAY).children()] == ["2027Q1", "2027Q2", "2027Q3", "2027Q4"]
    assert [m.key for m in parse_period("2027Q1", TODAY).children()] == ["2027-01", "2027-02", "2027-03"]
    crossing = parse_period("2027W05", TODAY)  # 2027-02-01 is a Monday: inside February
    assert [m.key for m in crossing.months()] == ["2027-02"]
    month_end = parse_period("2026W49", TODAY)  # 11-30 .. 12-06
    assert [m.key for m in month_end.months()] == ["2026-11", "2026-12"]


def test_which_words_are_periods_and_which_are_amounts() -> None:
    for word in ("本月", "13月", "2027Q9", "2027-03", "9999-12", "2027年第5周", "上季度"):
        assert looks_like_period(word), word
    for word in ("5000万", "100万", "20", "2027", "跟进", "团队", "1.5亿"):
        assert not looks_like_period(word), word
    assert is_bare_year("2027") and is_bare_year("2027年") and not is_bare_year("20")
