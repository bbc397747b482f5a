"""The working-day calendar: when the stand-up and digest fire, and when an untaken help request escalates."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules import calendar as workcal
from schedules.calendar import (
    CALENDAR_KINDS,
    ChinaHolidayCalendar,
    WeekdayCalendar,
    WorkCalendar,
    at_local,
    calendar_for,
    local_now,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
cn = calendar_for("cn")
weekdays = calendar_for("weekdays")


@pytest.fixture
def fresh_fallback_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start from "no year warned yet", whatever other tests in this process already triggered."""
    monkeypatch.setattr(workcal, "_fallback_years_warned", set())


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "salesbot.calendar" and r.levelno == logging.WARNING]


def shanghai(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SHANGHAI)


# --- choosing a calendar -------------------------------------------------------------------------------------


def test_calendar_for_returns_the_named_kind() -> None:
    assert isinstance(cn, ChinaHolidayCalendar)
    assert isinstance(weekdays, WeekdayCalendar)
    assert set(CALENDAR_KINDS) == {"cn", "weekdays"}


@pytest.mark.parametrize("kind", ["", "CN-holidays", "mon-fri", None])
def test_calendar_for_rejects_an_unknown_kind_with_value_error(kind: str) -> None:
    with pytest.raises(ValueError, match="cn, weekdays"):
        calendar_for(kind)


# --- the Chinese holiday calendar ----------------------------------------------------------------------------


def test_national_day_2026_is_not_a_working_day() -> None:
    assert not cn.is_working_day(date(2026, 10, 1))


def test_whole_national_day_week_2026_is_off_on_cn_but_on_for_weekdays_calendar() -> None:
    week = [date(2026, 10, 1) + timedelta(days=i) for i in range(7)]
    assert not any(cn.is_working_day(d) for d in week)
    assert [weekdays.is_working_day(d) for d in week] == [d.weekday() < 5 for d in week]


def test_make_up_saturday_2026_is_a_working_day() -> None:
    saturday = date(2026, 2, 14)  # 调休: worked to lengthen the Spring Festival break
    assert saturday.weekday() == 5
    assert chinese_calendar.is_workday(saturday)  # the library's data agrees, so the test checks us, not it
    assert cn.is_working_day(saturday)
    assert not weekdays.is_working_day(saturday)


def test_every_2026_make_up_weekend_day_in_the_library_is_a_working_day() -> None:
    make_up = [
        d
        for d in chinese_calendar.get_workdays(date(2026, 1, 1), date(2026, 12, 31), include_weekends=True)
        if d.weekday() >= 5
    ]
    assert date(2026, 10, 10) in make_up and len(make_up) >= 4
    assert all(cn.is_working_day(d) for d in make_up)


def test_spring_festival_2026_weekdays_are_not_working_days() -> None:
    # Chinese New Year's Day is Tuesday 2026-02-17; the break runs Sunday 15th to Monday 23rd.
    festival_weekdays = [date(2026, 2, 16) + timedelta(days=i) for i in range(5)] + [date(2026, 2, 23)]
    assert not any(cn.is_working_day(d) for d in festival_weekdays)
    assert cn.is_working_day(date(2026, 2, 13))
    assert cn.is_working_day(date(2026, 2, 24))


def test_weekdays_calendar_ignores_holidays() -> None:
    assert weekdays.is_working_day(date(2026, 10, 1))  # National Day, a Thursday
    assert weekdays.is_working_day(date(2026, 2, 17))  # Chinese New Year, a Tuesday
    assert not weekdays.is_working_day(date(2026, 10, 10))  # a 调休 Saturday is still a Saturday


def test_a_datetime_is_refused_where_a_local_date_is_meant() -> None:
    # 2026-09-30 17:00 UTC is already National Day in Beijing; taking .date() of the UTC value would be wrong.
    with pytest.raises(TypeError, match=r"\.date\(\)"):
        cn.is_working_day(datetime(2026, 9, 30, 17, 0, tzinfo=UTC))


# --- years the library does not know -------------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_fallback_warnings")
def test_unknown_year_2027_falls_back_to_mon_fri_with_exactly_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 3, 1))  # precondition: the library really does not know 2027

    caplog.set_level(logging.WARNING, logger="salesbot.calendar")
    days = [date(2027, 1, 1) + timedelta(days=i) for i in range(365)]
    for _ in range(3):
        assert [cn.is_working_day(d) for d in days] == [d.weekday() < 5 for d in days]
    assert cn.next_working_day(date(2027, 3, 5)) == date(2027, 3, 8)  # Friday → Monday
    assert cn.working_days_between(date(2027, 3, 1), date(2027, 3, 15)) == 10

    warnings = fallback_warnings(caplog)
    assert len(warnings) == 1
    assert "2027" in warnings[0].getMessage()


@pytest.mark.usefixtures("fresh_fallback_warnings")
def test_each_unknown_year_warns_once_of_its_own(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="salesbot.calendar")
    for d in [date(2003, 6, 2), date(2027, 6, 1), date(2003, 6, 3), date(2027, 6, 2), date(2026, 6, 1)]:
        cn.is_working_day(d)
    messages = [r.getMessage() for r in fallback_warnings(caplog)]
    assert len(messages) == 2
    assert "2003" in messages[0] and "2027" in messages[1]


@pytest.mark.usefixtures("fresh_fallback_warnings")
def test_known_year_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="salesbot.calendar")
    cn.working_days_between(date(2026, 1, 1), date(2026, 12, 31))
    assert fallback_warnings(caplog) == []


# --- next_working_day and working_days_between ----------------------------------------------------------------


def test_next_working_day_skips_the_national_day_holiday_block() -> None:
    assert cn.next_working_day(date(2026, 9, 30)) == date(2026, 10, 8)
    assert weekdays.next_working_day(date(2026, 9, 30)) == date(2026, 10, 1)


def test_next_working_day_lands_on_a_make_up_saturday() -> None:
    assert cn.next_working_day(date(2026, 10, 9)) == date(2026, 10, 10)
    assert cn.next_working_day(date(2026, 2, 13)) == date(2026, 2, 14)
    assert cn.next_working_day(date(2026, 2, 14)) == date(2026, 2, 24)  # over Spring Festival


def test_next_working_day_is_strictly_after_a_working_day() -> None:
    assert weekdays.next_working_day(date(2026, 11, 23)) == date(2026, 11, 24)


def test_working_days_between_counts_start_but_not_end() -> None:
    monday, next_monday = date(2026, 11, 23), date(2026, 11, 30)
    assert weekdays.working_days_between(monday, next_monday) == 5
    assert weekdays.working_days_between(monday, monday) == 0
    assert weekdays.working_days_between(next_monday, monday) == -5


def test_working_days_between_across_national_day_counts_the_make_up_saturday() -> None:
    # Mon 28 Sep – Sun 11 Oct 2026: 28, 29, 30 Sep; 8, 9 Oct; Sat 10 Oct (调休). The Sunday 20 Sep is outside.
    assert cn.working_days_between(date(2026, 9, 28), date(2026, 10, 12)) == 6
    assert weekdays.working_days_between(date(2026, 9, 28), date(2026, 10, 12)) == 10


# --- add_working_hours ----------------------------------------------------------------------------------------


def test_help_request_on_friday_afternoon_escalates_monday_morning() -> None:
    friday_4pm = shanghai(2026, 11, 27, 16)
    assert weekdays.add_working_hours(friday_4pm, 4) == shanghai(2026, 11, 30, 11)


def test_working_hours_carry_over_a_night() -> None:
    assert weekdays.add_working_hours(shanghai(2026, 11, 24, 17, 30), 1.5) == shanghai(2026, 11, 25, 10)


def test_working_hours_skip_the_national_day_holiday_on_cn() -> None:
    wednesday_4pm = shanghai(2026, 9, 30, 16)
    assert cn.add_working_hours(wednesday_4pm, 4) == shanghai(2026, 10, 8, 11)
    assert weekdays.add_working_hours(wednesday_4pm, 4) == shanghai(2026, 10, 1, 11)


def test_working_hours_count_a_make_up_saturday_on_cn() -> None:
    friday_4pm = shanghai(2026, 10, 9, 16)
    assert cn.add_working_hours(friday_4pm, 4) == shanghai(2026, 10, 10, 11)


def test_request_outside_office_hours_starts_counting_at_next_opening() -> None:
    assert weekdays.add_working_hours(shanghai(2026, 11, 24, 7), 4) == shanghai(2026, 11, 24, 13)
    assert weekdays.add_working_hours(shanghai(2026, 11, 24, 22), 4) == shanghai(2026, 11, 25, 13)
    assert weekdays.add_working_hours(shanghai(2026, 11, 28, 10), 4) == shanghai(2026, 11, 30, 13)  # Saturday


def test_hours_ending_at_closing_time_end_that_day() -> None:
    assert weekdays.add_working_hours(shanghai(2026, 11, 27, 14), 4) == shanghai(2026, 11, 27, 18)


def test_custom_office_hours_are_respected() -> None:
    result = weekdays.add_working_hours(shanghai(2026, 11, 24, 17), 2, day_start=time(8, 30), day_end=time(17, 30))
    assert result == shanghai(2026, 11, 25, 10)


def test_zero_working_hours_returns_start() -> None:
    saturday_night = shanghai(2026, 11, 28, 23)
    assert weekdays.add_working_hours(saturday_night, 0) == saturday_night


def test_add_working_hours_result_stays_in_the_start_zone() -> None:
    result = cn.add_working_hours(shanghai(2026, 11, 24, 9), 1)
    assert result.tzinfo is SHANGHAI
    assert result.astimezone(UTC) == datetime(2026, 11, 24, 2, tzinfo=UTC)


class EveryDayCalendar(WorkCalendar):
    """Seven working days a week: daylight-saving changes happen on Sundays."""

    kind = "every-day"

    def is_working_day(self, d: date) -> bool:
        return True


def test_working_hours_follow_real_time_across_a_daylight_saving_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # Clocks jump from 02:00 to 03:00 on Sunday 29 March 2026: three real hours after midnight is 04:00.
    start = datetime(2026, 3, 29, 0, tzinfo=berlin)
    due = EveryDayCalendar().add_working_hours(start, 3, day_start=time(0), day_end=time(12))
    assert due == datetime(2026, 3, 29, 4, tzinfo=berlin)
    assert due.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=3)


@pytest.mark.parametrize(
    ("start", "hours", "kwargs", "message"),
    [
        (datetime(2026, 11, 24, 9), 1, {}, "timezone-aware"),
        (shanghai(2026, 11, 24, 9), -1, {}, "hours"),
        (shanghai(2026, 11, 24, 9), float("nan"), {}, "hours"),
        (shanghai(2026, 11, 24, 9), float("inf"), {}, "hours"),
        (shanghai(2026, 11, 24, 9), 1, {"day_start": time(18), "day_end": time(9)}, "day_start"),
    ],
)
def test_add_working_hours_rejects_bad_arguments(
    start: datetime, hours: float, kwargs: dict[str, time], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        weekdays.add_working_hours(start, hours, **kwargs)


quarter_hours = st.integers(min_value=0, max_value=4 * 60).map(lambda q: q / 4)  # exact in binary floating point
starts_2026 = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 11, 30), timezones=st.just(SHANGHAI)
)


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(CALENDAR_KINDS), start=starts_2026, a=quarter_hours, b=quarter_hours)
def test_adding_working_hours_in_two_steps_equals_adding_them_at_once(
    kind: str, start: datetime, a: float, b: float
) -> None:
    calendar = calendar_for(kind)
    in_two_steps = calendar.add_working_hours(calendar.add_working_hours(start, a), b)
    assert in_two_steps == calendar.add_working_hours(start, a + b)


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(CALENDAR_KINDS), start=starts_2026, hours=quarter_hours.filter(lambda h: h > 0))
def test_working_hours_end_inside_office_hours_of_a_working_day(kind: str, start: datetime, hours: float) -> None:
    calendar = calendar_for(kind)
    due = calendar.add_working_hours(start, hours)
    assert due > start
    assert calendar.is_working_day(due.date())
    assert time(9) < due.time() <= time(18)


# --- time zones ------------------------------------------------------------------------------------------------


def test_nine_am_in_shanghai_is_one_am_utc() -> None:
    nine = at_local(date(2026, 11, 27), time(9), "Asia/Shanghai")
    assert nine == datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    assert nine.tzinfo == SHANGHAI and nine.hour == 9


def test_local_now_moves_a_late_utc_evening_into_the_next_shanghai_day() -> None:
    now_utc = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
    now_local = local_now(now_utc, "Asia/Shanghai")
    assert now_local == now_utc
    assert (now_local.date(), now_local.hour) == (date(2026, 10, 1), 1)
    assert not cn.is_working_day(now_local.date())


def test_local_now_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_now(datetime(2026, 11, 27, 1, 0), "Asia/Shanghai")


@pytest.mark.parametrize("tz_name", ["Mars/Olympus_Mons", "asia/shanghai", "Asia", "", "../etc", "/etc/passwd"])
def test_unknown_zone_name_raises_a_clear_value_error(tz_name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        at_local(date(2026, 11, 27), time(9), tz_name)
    with pytest.raises(ValueError, match="unknown time zone"):
        local_now(datetime(2026, 11, 27, 1, tzinfo=UTC), tz_name)
