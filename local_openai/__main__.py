"""`python -m local_openai serve [...]`: the local backend over HTTP."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import date

from local_openai.options import BATCH_WINDOW_SECONDS, DEFAULT_JOB_SECONDS, PROFILES, BackendOptions
from local_openai.server import DEFAULT_HOST, DEFAULT_PORT, serve


def _model_shutdown(value: str) -> tuple[str, str]:
    """`MODEL=YYYY-MM-DD` -> (model, ISO date); argparse reports a ValueError as a usage error."""
    model, sep, day = value.partition("=")
    if not sep or not model.strip():
        raise argparse.ArgumentTypeError(f"expected MODEL=YYYY-MM-DD, got {value!r}")
    try:
        return model.strip(), date.fromisoformat(day.strip()).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{day!r} is not a date (YYYY-MM-DD)") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of `serve`."""
    parser = argparse.ArgumentParser(prog="python -m local_openai")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve the OpenAI-compatible API at /v1")
    run.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: loopback only)")
    run.add_argument("--port", type=int, default=DEFAULT_PORT)
    run.add_argument("--data-dir", default=None, help="store directory (default: $FINE_TUNING_WORKDIR/local_openai)")
    run.add_argument(
        "--api-key",
        default=os.environ.get("LOCAL_OPENAI_API_KEY"),
        help="refuse requests without this bearer token (401); default $LOCAL_OPENAI_API_KEY, "
        "which keeps the key out of the process list",
    )
    run.add_argument("--latency-ms", type=float, default=0.0, help="delay every response by this much")
    run.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 429/500/503")
    run.add_argument("--job-seconds", type=float, default=DEFAULT_JOB_SECONDS, help="time from job creation to a final state")
    run.add_argument(
        "--batch-seconds", type=float, default=None, help="time from batch creation to completed (default: --job-seconds)"
    )
    run.add_argument(
        "--batch-window-seconds", type=float, default=BATCH_WINDOW_SECONDS,
        help="a batch still running this long after creation expires (default: 24 h, OpenAI's window)",
    )
    run.add_argument(
        "--profile", choices=PROFILES, default="openai",
        help="the provider to play: openai (/v1) or azure (/openai/v1, api-key header, deployments, management routes)",
    )
    run.add_argument(
        "--model-shutdown", action="append", default=[], metavar="MODEL=YYYY-MM-DD", type=_model_shutdown,
        help="the model (and every model fine-tuned from it) reports this shutdown_date and, from that day, "
        "refuses work as a shut-down model does (repeatable)",
    )
    run.add_argument(
        "--refuse-fine-tuning", action="store_true",
        help="refuse job creation as OpenAI does for an organization without fine-tuning access (403)",
    )
    run.add_argument(
        "--job-list-lag-seconds", type=float, default=0.0, metavar="S",
        help="fault: a new job shows in GET /fine_tuning/jobs only S seconds after its creation (retrieving it by "
        "id sees it at once), as an eventually consistent list endpoint may lag (default 0: off)",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.error_rate <= 1.0:
        parser.error("--error-rate must be within [0, 1]")
    times = (args.latency_ms, args.job_seconds, args.batch_window_seconds, args.batch_seconds or 0.0, args.job_list_lag_seconds)
    if min(times) < 0:
        parser.error("--latency-ms, --job-seconds, --job-list-lag-seconds and the --batch-* times must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    options = BackendOptions(
        data_dir=args.data_dir,
        api_key=args.api_key,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        job_seconds=args.job_seconds,
        batch_seconds=args.batch_seconds,
        batch_window_seconds=args.batch_window_seconds,
        profile=args.profile,
        model_shutdowns=tuple(args.model_shutdown),
        refuse_fine_tuning=args.refuse_fine_tuning,
        job_list_lag_seconds=args.job_list_lag_seconds,
    )
    serve(options, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
