"""A terminal logger that reads like a progress report: one line per finished step.

Dagster's console logger prints every event with the date, job, run id and pid (about 110
characters before the message). `make run` selects this `progress` logger instead through its
run config (`loggers: progress: ...`); runs that configure no logger (the UI, schedules,
sensors) keep Dagster's default console logger. Either way every event, DEBUG included, is
stored in the run's event log: a logger only decides what reaches the terminal.

What it prints:
- when a step succeeds, one line `HH:MM:SS [step] <the step's last message>`;
- a warning or error at once, and a failed step or run with its error (no stack trace);
- on a terminal, the step in progress as one line that each new message overwrites (the
  provider's job events, checkpoints, metrics); in a log file, nothing of that.
"""

from __future__ import annotations

import logging
import shutil
import sys
from typing import IO, Any

import dagster as dg

from fine_tuning.lib.facts import EVENT_TYPE_TO_DISPLAY_STRING, LOG_RECORD_METADATA_ATTR

TIME_FORMAT = "%H:%M:%S"
FAILURES = (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE)


def _meta(record: logging.LogRecord) -> dict[str, Any]:
    return getattr(record, LOG_RECORD_METADATA_ATTR, None) or {}


def _source(meta: dict[str, Any]) -> str:
    return meta.get("step_key") or (f"resource:{meta['resource_name']}" if meta.get("resource_name") else "run")


class ProgressFormatter(logging.Formatter):
    """`HH:MM:SS [step] message`; the level only when it is a warning or worse."""

    def __init__(self) -> None:
        super().__init__(datefmt=TIME_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """One line per record (plus the error of a failure event, which a reader needs)."""
        meta = _meta(record)
        message = meta.get("orig_message") or record.getMessage()
        event = meta.get("dagster_event")
        if event is not None:
            event_type = EVENT_TYPE_TO_DISPLAY_STRING.get(event.event_type, event.event_type_value)
            message = f"{event_type}: {message}{_event_error(event)}"
        level = f"{record.levelname} " if record.levelno >= logging.WARNING else ""
        return f"{self.formatTime(record, self.datefmt)} [{_source(meta)}] {level}{message}"


def _event_error(event: object) -> str:
    """The error a failure event carries: its message and causes, without the stack trace
    (the run's event log keeps that)."""
    data = getattr(event, "event_specific_data", None)
    error = getattr(data, "error", None)
    lines = []
    while error is not None:
        message = error.message.strip()
        lines.append(f"  {message.splitlines()[-1] if message else error.cls_name}")
        error = error.cause
    return "".join(f"\n{line}" for line in lines)


class SkippedStepFilter(logging.Filter):
    """Drops the 'Dependencies for step X ... Not executing.' cascade after a failure: the
    failed step's line and the run's failure line already say what went wrong, and the event
    log still lists every skipped step."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the engine's skipped-step lines, True for everything else."""
        message = _meta(record).get("orig_message") or ""
        return not (message.startswith("Dependencies for step ") and message.endswith("Not executing."))


class ProgressHandler(logging.Handler):
    """One line per finished step, warnings and failures at once, and on a terminal the step in
    progress as one updating line."""

    def __init__(self, stream: IO[str], level: int) -> None:
        super().__init__(logging.DEBUG)  # step events are DEBUG records: the handler picks what to show
        self.stream = stream
        self.shown_level = level
        self.live = stream.isatty()
        self.last_message: dict[str, logging.LogRecord] = {}
        self._live_line = False
        self.setFormatter(ProgressFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        """Print, update the live line, or only remember the record, as the module docstring says."""
        try:
            meta = _meta(record)
            event = meta.get("dagster_event")
            if event is not None:
                self._on_event(record, event, _source(meta))
            elif record.levelno >= logging.WARNING:
                self._print(self.format(record))
            elif record.levelno >= self.shown_level:
                self.last_message[_source(meta)] = record
                self._show_live(self.format(record))
        except Exception:  # noqa: BLE001 - a logger must never break the run
            self.handleError(record)

    def _on_event(self, record: logging.LogRecord, event: Any, source: str) -> None:
        if event.event_type in FAILURES:
            self._print(self.format(record))
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            last = self.last_message.pop(source, None)
            done = f"{self.formatter.formatTime(record, TIME_FORMAT)} [{source}] done"
            self._print(self.format(last) if last is not None else done)
        elif event.event_type == dg.DagsterEventType.STEP_START:
            self._show_live(f"{self.formatter.formatTime(record, TIME_FORMAT)} [{source}] started")

    def _show_live(self, line: str) -> None:
        if not self.live:
            return
        width = max(20, shutil.get_terminal_size().columns - 1)
        first_line = line.splitlines()[0] if line else ""
        self.stream.write("\r\033[K" + first_line[:width])
        self.stream.flush()
        self._live_line = True

    def _print(self, line: str) -> None:
        if self._live_line:
            self.stream.write("\r\033[K")
            self._live_line = False
        self.stream.write(line + "\n")
        self.stream.flush()


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, default_value="INFO",
                              description="Lowest level of a step's messages considered for its line."),
    },
    description="Progress on stderr: one line per finished step; on a terminal, one updating line.",
)
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """A logger writing progress lines to stderr (see the module docstring)."""
    level = logging.getLevelName(init_context.logger_config["log_level"].upper())
    log = logging.getLogger("fine_tuning.progress")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.handlers.clear()  # a second run in the same process must not print every line twice
    handler = ProgressHandler(sys.stderr, level)
    handler.addFilter(SkippedStepFilter())
    log.addHandler(handler)
    return log


@dg.definitions
def loggers() -> dg.Definitions:
    """Dagster's console logger stays the default; `progress` is there for run configs to pick."""
    return dg.Definitions(loggers={**dg.default_loggers(), "progress": progress_logger})
