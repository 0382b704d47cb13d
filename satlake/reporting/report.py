"""``Report``: what a ``satlake`` command prints, rendered by rich: headings, plain lines, tables, results of
runs and checks, progress bars on long work, and errors."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from satlake.reporting.summaries import RunResult, condense_checks, group_successful_runs

R = TypeVar("R", bound=RunResult)


class Report:
    """The output of one command. ``out`` and ``err`` default to the process's current stdout and stderr;
    while output is captured (``capture_output``) they are the terminal's."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, width: int | None = None) -> None:
        self._out = out
        self._err = err
        self._width = width

    def _console(self, stream: TextIO) -> Console:
        return Console(file=stream, highlight=False, soft_wrap=True, emoji=False, width=self._width)

    @property
    def console(self) -> Console:
        """The rich console of the report (resolved on use, so a test's captured stdout is honoured)."""
        return self._console(self._out or sys.stdout)

    def line(self, text: str = "") -> None:
        """One line (or several, with newlines) exactly as given: no markup is interpreted."""
        self.console.print(Text(text))

    def heading(self, title: str) -> None:
        """A section of the report: a blank line, then the title in bold."""
        self.console.print()
        self.console.print(Text(title, style="bold"))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
        """Rows under column headings; numbers right-aligned."""
        table = Table(title=title, title_justify="left", show_edge=False, box=None, pad_edge=False)
        numeric = [bool(rows) and all(isinstance(r[i], int | float) for r in rows) for i in range(len(columns))]
        for name, is_number in zip(columns, numeric, strict=True):
            table.add_column(name, justify="right" if is_number else "left", overflow="fold")
        for row in rows:
            table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
        self.console.print(table)

    def run(self, outcome: RunResult) -> None:
        """One line per Dagster run: its id, what it materialized, who asked for it, status and duration."""
        status = Text("ok", style="green") if outcome.success else Text("FAILED", style="bold red")
        self.console.print(
            Text(f"  run {outcome.run_id[:8]} {outcome.description} ({outcome.source}) ")
            + status
            + Text(f" in {outcome.seconds:.1f}s")
        )

    def runs(self, outcomes: Sequence[RunResult]) -> None:
        """Many runs in few lines: each failed run on its own line, the successful ones one line per job and
        the sensor (or automation) that requested them."""
        for group in group_successful_runs(outcomes):
            self.console.print(Text("  ") + Text("ok", style="green") + Text(f" {group.describe()}"))
        for outcome in outcomes:
            if not outcome.success:
                self.run(outcome)

    def track_runs(
        self, description: str, work: Callable[[Callable[[R], None]], list[R]], *, detail: bool = True
    ) -> list[R]:
        """Call ``work`` with a callback it calls per finished run, under a progress bar counting the runs;
        then print the runs in a few lines (``runs``), or only the failed ones without ``detail``. Returns what
        ``work`` returned."""
        finished = 0
        with self.progress(description) as progress:

            def count(_outcome: R) -> None:
                nonlocal finished
                finished += 1
                progress(finished)

            outcomes = work(count)
        if detail:
            self.runs(outcomes)
        else:
            for outcome in outcomes:
                if not outcome.success:
                    self.run(outcome)
        return outcomes

    def checks(self, title: str, results: Mapping[str, tuple[bool, str]]) -> list[str]:
        """A heading counting passes and failures, then one PASS/FAIL line per check (a model's passing dbt
        tests share one line); returns the names of the failed checks."""
        failed = [name for name, (passed, _) in results.items() if not passed]
        self.heading(f"{title}: {len(results) - len(failed)} passed, {len(failed)} failed")
        for name, (passed, description) in condense_checks(results).items():
            mark = Text("PASS", style="green") if passed else Text("FAIL", style="bold red")
            self.console.print(Text("  ") + mark + Text(f" {name}: {description}"))
        return failed

    def failed_checks(
        self, results: Mapping[str, tuple[bool, str]], indent: str = "  ", summary: bool = True
    ) -> list[str]:
        """A section's checks in one line (how many passed and failed; ``summary=False`` leaves it to the caller,
        see ``checks_summary``), then a line per failure; returns the names of the failed checks. Nothing when
        there are none (a second demo run evaluates none)."""
        failed = [name for name, (passed, _) in results.items() if not passed]
        if results and summary:
            self.line(f"{indent}{checks_summary(results)}")
        for name in failed:
            self.line(f"{indent}  FAIL {name}: {results[name][1]}")
        return failed

    def error(self, message: str) -> None:
        """An error for the person at the terminal, in full, on stderr."""
        self._console(self._err or sys.stderr).print(Text(f"satlake: error: {message}", style="red"))

    def warning(self, message: str) -> None:
        """Something the person should know that does not stop the command, on stderr."""
        self._console(self._err or sys.stderr).print(Text(f"satlake: {message}", style="yellow"))

    @contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """A progress bar (a live one on a terminal) for long work; yields ``update(completed)``.

        Off a terminal (a pipe, a CI log) the bar is not redrawn: one summary line is printed at the end."""
        console = self.console
        started = time.perf_counter()
        done = 0
        if not console.is_terminal:

            def count(completed: int) -> None:
                nonlocal done
                done = completed

            yield count
            self.line(f"{description}: {done:,} in {time.perf_counter() - started:.1f}s")
            return
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn() if total else TextColumn(
            "{task.completed:,}"), TaskProgressColumn() if total else TextColumn(""), TimeElapsedColumn()]  # fmt: skip
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda completed: bar.update(task, completed=completed)


def checks_summary(results: Mapping[str, tuple[bool, str]]) -> str:
    """``checks: 13 passed, 0 failed``."""
    failed = sum(1 for passed, _ in results.values() if not passed)
    return f"checks: {len(results) - failed} passed, {failed} failed"
