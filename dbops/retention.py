"""Which backups to keep: restic's and borg's rules, as a pure function of names and times.

--keep N keeps the newest N. --keep-daily N keeps the newest backup of each of the last N days that
have a backup (--keep-weekly: ISO weeks, --keep-monthly: months). A backup kept by any rule stays.
Safety backups (taken by restore_db) follow their own rule: kept for a number of days.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

SAFETY_DAYS_DEFAULT = 7

PERIODS: dict[str, Callable[[datetime], tuple]] = {
    "daily": lambda when: (when.year, when.month, when.day),
    "weekly": lambda when: tuple(when.isocalendar())[:2],
    "monthly": lambda when: (when.year, when.month),
}


@dataclass(frozen=True)
class RetentionPolicy:
    last: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None

    def __bool__(self) -> bool:
        return any(count is not None for count in (self.last, self.daily, self.weekly, self.monthly))


def kept(backups: Iterable[tuple[str, datetime]], policy: RetentionPolicy) -> set[str]:
    """The names the policy keeps among (name, time) pairs of one database's backups."""
    newest_first = sorted(backups, key=lambda item: (item[1], item[0]), reverse=True)
    keep = {name for name, _ in newest_first[: policy.last or 0]}
    for period, period_of in PERIODS.items():
        count = getattr(policy, period) or 0
        seen: set[tuple] = set()
        for name, when in newest_first:
            if len(seen) >= count:
                break
            if period_of(when) not in seen:
                seen.add(period_of(when))
                keep.add(name)
    return keep


def to_delete(backups: Iterable[tuple[str, datetime]], policy: RetentionPolicy, protect: str | None) -> list[str]:
    """What the policy deletes, newest first; never protect (the backup just made)."""
    backups = list(backups)
    keep = kept(backups, policy)
    ordered = sorted(backups, key=lambda item: (item[1], item[0]), reverse=True)
    return [name for name, _ in ordered if name not in keep and name != protect]


def expired_safety(
    backups: Iterable[tuple[str, datetime]], now: datetime, days: int, protect: str | None
) -> list[str]:
    """Safety backups older than `days`; never protect (the one just taken)."""
    limit = now - timedelta(days=days)
    return [name for name, when in sorted(backups, key=lambda item: item[1], reverse=True)
            if when < limit and name != protect]
