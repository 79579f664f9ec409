"""Live progress of a running job, from the same progress reporting the command line shows.

The commands report progress with ``rich.progress.Progress`` bars and progress lines on
stderr.  While a job runs in a worker, :func:`capture` puts a subclass of ``Progress`` in
place of rich's (the commands import it inside their functions, so they pick it up) and
replaces stderr by a writer: every bar update and every stderr line becomes the job's
``progress`` (0–1) and ``message``, and the lines its growing ``log``, written to the job
record at most every :data:`INTERVAL_S` seconds.  Nothing in the commands changes.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["INTERVAL_S", "LiveReport", "capture", "overall_fraction"]

#: Shortest interval between two writes of a job's progress to its record [s].
INTERVAL_S = 0.5
_STEP = re.compile(r"(\d+)\s*/\s*(\d+)")


def overall_fraction(description: str, completed: float, total: float | None) -> float | None:
    """Fraction done of a bar, counting steps named in its description (``iteration 3/10``).

    Parameters
    ----------
    description : str
        The bar's label; ``k/N`` in it means step k of N (1-based).
    completed, total : float
        The bar's count; ``total`` None or 0 means unknown.

    Returns
    -------
    float or None
        ``(k − 1 + completed/total) / N``, or ``completed/total`` without a step, in [0, 1];
        None when the total is unknown.

    Examples
    --------
    >>> overall_fraction("iteration 3/10", 50, 100)
    0.25
    >>> overall_fraction("extracting", 3, 4)
    0.75
    """
    if not total:
        return None
    inner = min(1.0, max(0.0, completed / total))
    step = _STEP.search(description or "")
    if step and 0 < int(step.group(1)) <= int(step.group(2)):
        inner = (int(step.group(1)) - 1 + inner) / int(step.group(2))
    return min(1.0, max(0.0, inner))


class LiveReport:
    """The job's progress, message and log lines, written through ``write`` when due.

    Parameters
    ----------
    write : callable (progress, message, log) → None
        Stores the three in the job record.
    log : list of str
        The lines so far (kept and extended).
    """

    def __init__(self, write: Callable[[float | None, str | None, str], None], log: list[str]):
        self._write, self.lines = write, log
        self.progress: float | None = None
        self.message: str | None = None
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, *, progress: float | None = None, message: str | None = None) -> None:
        with self._lock:
            if progress is not None:
                self.progress = progress
            if message:
                self.message = message[:500]
        self.flush(force=False)

    def line(self, text: str) -> None:
        text = text.rstrip()
        if text:
            with self._lock:
                self.lines.append(text)
            self.update(message=text.strip().splitlines()[-1])

    def flush(self, *, force: bool = True) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < INTERVAL_S:
                return
            self._last = now
            state = (self.progress, self.message, "\n".join(self.lines))
        with contextlib.suppress(Exception):  # progress is advisory: never fail the job on it
            self._write(*state)


class _Stderr(io.TextIOBase):
    """stderr of a running job: complete lines go to the report, everything to ``text``."""

    def __init__(self, report: LiveReport) -> None:
        self.report, self.text, self._partial = report, io.StringIO(), ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.text.write(s)
        self._partial += s
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self.report.line(line)
        return len(s)

    def getvalue(self) -> str:
        return self.text.getvalue()


def _reporting_progress(base: type, report: LiveReport) -> type:
    """A subclass of rich's ``Progress`` that also tells ``report`` of every change."""

    class ReportingProgress(base):
        def _report(self, task_id) -> None:
            task = self._tasks.get(task_id)
            if task is not None:
                fraction = overall_fraction(task.description, task.completed, task.total)
                report.update(progress=fraction, message=task.description)

        def add_task(self, *args, **kwargs):
            task_id = super().add_task(*args, **kwargs)
            self._report(task_id)
            return task_id

        def update(self, task_id, **kwargs) -> None:
            super().update(task_id, **kwargs)
            self._report(task_id)

        def advance(self, task_id, advance: float = 1) -> None:
            super().advance(task_id, advance)
            self._report(task_id)

        def reset(self, task_id, **kwargs) -> None:
            super().reset(task_id, **kwargs)
            self._report(task_id)

    return ReportingProgress


@contextlib.contextmanager
def capture(report: LiveReport) -> Iterator[tuple[io.StringIO, _Stderr]]:
    """Run a command with its stdout collected and its progress going to ``report``.

    Yields ``(stdout, stderr)``; both keep everything written.  rich's ``Progress`` is
    restored afterwards and the report flushed.
    """
    import rich.progress

    original = rich.progress.Progress
    stdout, stderr = io.StringIO(), _Stderr(report)
    rich.progress.Progress = _reporting_progress(original, report)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            yield stdout, stderr
    finally:
        rich.progress.Progress = original
        if stderr._partial.strip():
            report.line(stderr._partial)
        report.flush()
