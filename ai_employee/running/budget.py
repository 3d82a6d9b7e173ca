"""The daily budget: what runs cost per UTC day, and whether new runs must wait.

The day's cost comes from the audit log at start (`run finished` entries) and then from each
run as its agent ends. Owned by the main loop (the service) or read once (`ai-employee status`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..base.logs import cost_on


def _day(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


@dataclass
class DailyBudget:
    limit_usd: float
    """daily_budget_usd: 0 means no limit."""
    spent: dict[str, float] = field(default_factory=dict)
    """Cost recorded per UTC day (ISO date)."""

    @classmethod
    def from_logs(cls, logs_dir: Path, limit_usd: float, now: datetime) -> DailyBudget:
        """The budget with today's cost as the audit log has it."""
        budget = cls(limit_usd)
        budget.load(logs_dir, now)
        return budget

    def load(self, logs_dir: Path, now: datetime) -> None:
        """Today's cost as the audit log has it (at start: what runs before this one spent)."""
        self.spent[_day(now)] = cost_on(logs_dir, now)

    def count(self, cost_usd: float | None, now: datetime) -> None:
        """A run's cost, counted on the day it ended."""
        if cost_usd:
            self.spent[_day(now)] = self.spent.get(_day(now), 0.0) + cost_usd

    def spent_on(self, now: datetime) -> float:
        return self.spent.get(_day(now), 0.0)

    def reached(self, now: datetime) -> bool:
        """New runs wait: today's cost reached a limit that is set."""
        return self.limit_usd > 0 and self.spent_on(now) >= self.limit_usd

    def notice(self, now: datetime) -> str | None:
        """What Dashboard.md says while the budget holds runs back."""
        if not self.reached(now):
            return None
        return (
            f"Daily budget reached: ${self.spent_on(now):.2f} of ${self.limit_usd:.2f} "
            "spent today (UTC). New runs wait until tomorrow or a higher daily_budget_usd."
        )

    def status_line(self, now: datetime) -> str:
        """The cost line of `ai-employee status`."""
        line = f"cost today (UTC): ${self.spent_on(now):.4f}"
        if self.limit_usd > 0:
            line += f" of ${self.limit_usd:.2f}"
            if self.reached(now):
                line += " - budget reached: new runs wait"
        return line
