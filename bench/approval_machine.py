"""The approval state machine at length: how many steps and examples it tries on the real
code without finding a fault, and how soon random search finds a planted one.

    .venv/bin/python bench/approval_machine.py [--examples 1000] [--trials 5]

First the machine of tests/test_approval_property.py with `--examples` examples of up to 30
steps each, on the code as it is (it must find nothing); then `--trials` searches with the
planted bug (a copy of an approved task keeps `approved_at`), each until it is found, printing
the examples and seconds each search took.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

import tests.test_approval_property as machine  # noqa: E402
from ai_employee.deciding import whose  # noqa: E402
from ai_employee.notes.taskfile import OWNED_KEYS  # noqa: E402


class Counted(machine.ApprovalMachine):
    examples = 0
    steps = 0

    def __init__(self) -> None:
        super().__init__()
        Counted.examples += 1

    def check_invariants(self, *args: object, **kwargs: object) -> None:
        Counted.steps += 1
        super().check_invariants(*args, **kwargs)  # type: ignore[arg-type]


def run(examples: int, shrink: bool) -> float:
    Counted.examples = Counted.steps = 0
    started = time.monotonic()
    run_state_machine_as_test(
        Counted,
        settings=settings(
            max_examples=examples,
            stateful_step_count=30,
            deadline=None,
            database=None,
            phases=[Phase.generate, *([Phase.shrink] if shrink else [])],
            suppress_health_check=list(HealthCheck),
        ),
    )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    print(
        f"$ .venv/bin/python bench/approval_machine.py --examples {args.examples} "
        f"--trials {args.trials}"
    )
    seconds = run(args.examples, shrink=True)
    print(
        f"real code: {Counted.examples} examples, {Counted.steps} steps "
        f"(up to 30 each), no fault found, {seconds:.1f} s"
    )
    whose.OWNED_KEYS = tuple(k for k in OWNED_KEYS if k not in ("approved_at", "approved_by"))
    found = []
    for trial in range(args.trials):
        try:
            run(20_000, shrink=False)
            print(f"planted bug, trial {trial + 1}: NOT found in {Counted.examples} examples")
        except AssertionError as err:
            seconds = time.monotonic() - 0
            found.append((Counted.examples, Counted.steps))
            print(
                f"planted bug, trial {trial + 1}: found after {Counted.examples} examples, "
                f"{Counted.steps} steps: {str(err).splitlines()[0]}"
            )
    if found:
        print(
            f"median: {statistics.median(e for e, _ in found):.0f} examples, "
            f"{statistics.median(s for _, s in found):.0f} steps to find it"
        )


if __name__ == "__main__":
    main()
