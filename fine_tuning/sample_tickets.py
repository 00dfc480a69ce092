"""Synthetic support tickets: `python -m fine_tuning.sample_tickets --out DIR [--tickets N] [--seed S]`.

The second shipped task's data (`fine_tuning/defs/support_tickets/`): customer support tickets
to route to the department that should handle them. Writes `support_tickets.json.gz`, one ticket
per line:

    {"ticket_id": "T000001", "created_at": "2026-01-05T09:14:00Z", "channel": "email",
     "customer_tier": "pro", "subject": "...", "body": "...", "department": "billing"}

Deterministic per seed (one `random.Random(seed)`, gzip mtime 0: identical bytes on every run),
standard library only. Learnable: each department has its own vocabulary in subject and body (a
third of the subjects are vague),
mixed with words every ticket shares; nearly a third of the tickets also mention a second department's
words, so the task is not plain keyword spotting, and department names never appear in the text.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

TICKETS_FILE_NAME = "support_tickets.json.gz"
DEFAULT_TICKETS = 600
DEPARTMENTS: tuple[str, ...] = ("billing", "technical", "shipping", "account", "returns")
CHANNELS = ("email", "chat", "phone", "web form")
TIERS = ("free", "pro", "enterprise")
_VOCABULARY = {
    "billing": "invoice charged twice refund of the fee card declined subscription price receipt overcharge payment "
               "VAT tax statement",
    "technical": "error message crashes app freezes login page blank sync fails update broke timeout bug 500 "
                 "integration API",
    "shipping": "parcel tracking number courier delivery late package lost address label dispatch warehouse "
                "customs arrival",
    "account": "password reset two-factor email change username locked out profile delete my data permissions "
               "team seat invite",
    "returns": "return label exchange wrong size damaged item send back replacement faulty product return window "
               "store credit",
}
_SUBJECTS = {
    "billing": ["Charged twice this month", "Question about my invoice", "Card declined at renewal", "Refund request"],
    "technical": ["App keeps crashing", "Error when I log in", "Sync not working", "Page stays blank"],
    "shipping": ["Where is my parcel?", "Tracking has not moved", "Package delivered to the wrong address",
                 "Delivery is late"],
    "account": ["Cannot reset my password", "Locked out of my account", "Change the email on my profile",
                "Add a seat for my team"],
    "returns": ["Item arrived damaged", "Wrong size, need an exchange", "How do I send this back?",
                "Replacement for a faulty product"],
}
# A third of the tickets say nothing in the subject: the body alone must tell.
_VAGUE_SUBJECTS = ["Need help", "Problem with my order", "Question", "Still waiting for an answer", "Urgent"]
_SHARED = ("hello please help thanks urgent since yesterday again still waiting order customer today week "
           "already tried twice support team regards asap").split()


def _sentence(rng: random.Random, words: list[str], count: int) -> str:
    return " ".join(rng.choice(words) for _ in range(count))


def ticket(rng: random.Random, index: int, start: datetime) -> dict[str, str]:
    """One ticket: mostly its department's words, some shared ones, now and then another department's."""
    department = DEPARTMENTS[index % len(DEPARTMENTS)] if index < len(DEPARTMENTS) * 2 else rng.choice(DEPARTMENTS)
    own = _VOCABULARY[department].split()
    parts = [_sentence(rng, own, rng.randint(2, 6)), _sentence(rng, _SHARED, rng.randint(3, 7))]
    if rng.random() < 0.3:
        other = rng.choice([d for d in DEPARTMENTS if d != department])
        parts.append(_sentence(rng, _VOCABULARY[other].split(), rng.randint(1, 3)))
    rng.shuffle(parts)
    created = start + timedelta(minutes=rng.randint(0, 60 * 24 * 90))
    return {
        "ticket_id": f"T{index + 1:06d}",
        "created_at": created.strftime("%Y-%m-%dT%H:%M:00Z"),
        "channel": rng.choice(CHANNELS),
        "customer_tier": rng.choice(TIERS),
        "subject": rng.choice(_VAGUE_SUBJECTS if rng.random() < 1 / 3 else _SUBJECTS[department]),
        "body": (". ".join(parts) + ".").capitalize(),
        "department": department,
    }


def tickets(count: int, seed: int) -> Iterator[dict[str, str]]:
    """`count` tickets, deterministic per seed."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(count):
        yield ticket(rng, index, start)


def write_tickets(out_dir: Path, count: int = DEFAULT_TICKETS, seed: int = 42) -> Path:
    """Write `support_tickets.json.gz` into `out_dir`; returns its path."""
    if count < 1:
        raise ValueError(f"--tickets must be at least 1, got {count}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TICKETS_FILE_NAME
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
        for row in tickets(count, seed):
            handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m fine_tuning.sample_tickets",
                                     description="Write synthetic support tickets as gzipped JSON lines.")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--tickets", type=int, default=DEFAULT_TICKETS, help=f"tickets (default {DEFAULT_TICKETS})")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    try:
        path = write_tickets(args.out, args.tickets, args.seed)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    print(f"tickets: {path} ({path.stat().st_size:,} bytes)", file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
