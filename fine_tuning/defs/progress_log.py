"""A terminal logger that reads like a progress report: `12:04:31 [step] message`.

Dagster's console logger prefixes every line with the date, job, run id and pid (about 110
characters before the message). `make run` selects this `progress` logger instead through its
run config (`loggers: progress: ...`); runs that configure no logger (the UI, schedules,
sensors) keep Dagster's default console logger. Either way every event, DEBUG included, is
stored in the run's event log: a logger only decides what reaches the terminal.
"""

from __future__ import annotations

import logging
import sys

import dagster as dg

from fine_tuning.lib.facts import EVENT_TYPE_TO_DISPLAY_STRING, LOG_RECORD_METADATA_ATTR

TIME_FORMAT = "%H:%M:%S"


class ProgressFormatter(logging.Formatter):
    """`HH:MM:SS [step] message`; the level only when it is a warning or worse."""

    def __init__(self) -> None:
        super().__init__(datefmt=TIME_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """One line per record (plus the error of a failure event, which a reader needs)."""
        meta = getattr(record, LOG_RECORD_METADATA_ATTR, None) or {}
        message = meta.get("orig_message") or record.getMessage()
        event = meta.get("dagster_event")
        if event is not None:
            event_type = EVENT_TYPE_TO_DISPLAY_STRING.get(event.event_type, event.event_type_value)
            message = f"{event_type}: {message}{_event_error(event)}"
        source = meta.get("step_key") or (f"resource:{meta['resource_name']}" if meta.get("resource_name") else "run")
        level = f"{record.levelname} " if record.levelno >= logging.WARNING else ""
        return f"{self.formatTime(record, self.datefmt)} [{source}] {level}{message}"


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
        meta = getattr(record, LOG_RECORD_METADATA_ATTR, None) or {}
        message = meta.get("orig_message") or ""
        return not (message.startswith("Dependencies for step ") and message.endswith("Not executing."))


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, default_value="INFO", description="Lowest level shown on the terminal."),
    },
    description="Compact progress lines on stderr: time, step and message.",
)
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """A logger writing ProgressFormatter lines to stderr at the configured level."""
    level = logging.getLevelName(init_context.logger_config["log_level"].upper())
    log = logging.getLogger("fine_tuning.progress")
    log.setLevel(level)
    log.propagate = False
    log.handlers.clear()  # a second run in the same process must not print every line twice
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ProgressFormatter())
    handler.addFilter(SkippedStepFilter())
    log.addHandler(handler)
    return log


@dg.definitions
def loggers() -> dg.Definitions:
    """Dagster's console logger stays the default; `progress` is there for run configs to pick."""
    return dg.Definitions(loggers={**dg.default_loggers(), "progress": progress_logger})
