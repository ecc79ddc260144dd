"""Business-hours arithmetic: "2 business days" after Friday 16:00 is Tuesday 16:00.

Windows are built from local wall-clock times each day and all arithmetic is
done in UTC, so daylight-saving changes move the windows, never the sums.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from maild.config import BusinessHoursConfig
from maild.tickets.durations import Duration

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_DAYS_SEARCHED = 3 * 366


class BusinessCalendar:
    def __init__(self, config: BusinessHoursConfig) -> None:
        self.zone = ZoneInfo(config.timezone)
        self.weekdays = {_WEEKDAYS.index(day) for day in config.days}
        self.start = config.start
        self.end: time | str = config.end
        self.holidays = {date.fromisoformat(day) for day in config.holidays}
        # Each day's window, once worked out: the report asks for the same few hundred
        # days for thousands of tickets. A day's window never changes.
        self._windows: dict[date, tuple[datetime, datetime]] = {}

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and day not in self.holidays

    def window(self, day: date) -> tuple[datetime, datetime]:
        found = self._windows.get(day)
        if found is None:
            opens = datetime.combine(day, self.start, tzinfo=self.zone).astimezone(UTC)
            found = self._windows[day] = (opens, self._closes(day))
        return found

    def _closes(self, day: date) -> datetime:
        if isinstance(self.end, time):
            return datetime.combine(day, self.end, tzinfo=self.zone).astimezone(UTC)
        # "24:00": the next day's midnight.
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(UTC)

    @property
    def business_day_length(self) -> timedelta:
        opens, closes = self.window(date(2001, 1, 1))  # a day without a DST change
        return closes - opens

    def business_length(self, duration: Duration) -> timedelta:
        """How much business time a business duration is: a day is one day's hours."""
        if duration.unit == "day":
            return duration.amount * self.business_day_length
        if duration.unit == "week":
            return duration.amount * len(self.weekdays) * self.business_day_length
        return duration.wall_clock

    def add(self, start: datetime, duration: Duration) -> datetime:
        if not duration.business:
            return start + duration.wall_clock
        return self.add_business_time(start, self.business_length(duration))

    def elapsed(self, start: datetime, end: datetime, business: bool) -> timedelta:
        """Time from start to end, counted as a duration of that kind counts it."""
        if business:
            return self.business_time_between(start, end)
        return max(end - start, timedelta())

    def add_business_time(self, start: datetime, amount: timedelta) -> datetime:
        cursor = start.astimezone(UTC)
        remaining = amount
        day = cursor.astimezone(self.zone).date()
        for _ in range(_MAX_DAYS_SEARCHED):
            if self.is_business_day(day):
                opens, closes = self.window(day)
                begin = max(cursor, opens)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
            day += timedelta(days=1)
        raise ValueError("no business hours within three years; check [business_hours]")

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """The business hours that pass from `start` to `end` (zero if end is earlier)."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta()
        day = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        while day <= last:
            if self.is_business_day(day):
                opens, closes = self.window(day)
                begin, finish = max(start, opens), min(end, closes)
                if begin < finish:
                    total += finish - begin
            day += timedelta(days=1)
        return total
