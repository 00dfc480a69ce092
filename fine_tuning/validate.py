"""`python -m fine_tuning.validate FILE.jsonl [--model NAME] [--method supervised|dpo|reinforcement] [--n-epochs N]`.

The pipeline's file checks from the shell, for the file format of a fine-tuning method
(supervised by default). A model that does not take the method is refused before the file is read.

Exit codes: 0 no format error, 1 any error in the file (format, too few examples, over the token
limit, or over `--max-cost-usd` when given), 2 the file does not exist.
"""

import argparse
import sys
from collections.abc import Sequence

from fine_tuning.core.catalog import FINE_TUNING_METHODS, MIN_TRAINING_EXAMPLES, method_problem, supported_methods
from fine_tuning.core.chat_files import validate_chat_file
from fine_tuning.core.settings import DEFAULT_BASE_MODEL


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m fine_tuning.validate",
        description="Validate an OpenAI chat fine-tuning JSONL file: format, tokens, estimated cost.",
    )
    parser.add_argument("file", help="the .jsonl file to check")
    parser.add_argument("--model", default=DEFAULT_BASE_MODEL, help=f"base model (default {DEFAULT_BASE_MODEL})")
    parser.add_argument(
        "--method", choices=FINE_TUNING_METHODS, default="supervised",
        help="the fine-tuning method the file is for (default supervised)",
    )
    parser.add_argument("--n-epochs", type=int, default=None, help="epochs; default: OpenAI's 'auto' rule")
    parser.add_argument(
        "--min-examples", type=int, default=MIN_TRAINING_EXAMPLES,
        help=f"minimum number of examples (default {MIN_TRAINING_EXAMPLES}; use 1 for a validation file)",
    )
    parser.add_argument("--max-cost-usd", type=float, default=None, help="also fail when the estimate exceeds this")
    args = parser.parse_args(argv)
    if args.n_epochs is not None and args.n_epochs < 1:
        parser.error("--n-epochs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report and return the exit code."""
    args = parse_args(argv)
    # A model the catalog does not know is checked with conservative limits (the report says so);
    # one it knows must take the method.
    problem = method_problem(args.model, args.method) if supported_methods(args.model) else None
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        report = validate_chat_file(
            args.file, args.model, n_epochs=args.n_epochs, min_examples=args.min_examples, method=args.method
        )
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.text())
    failed = not report.ok
    if args.max_cost_usd is not None:
        cost = report.estimated_cost_usd
        if cost is None:
            print(f"\nBudget: cannot verify ${args.max_cost_usd:.2f}: price of {args.model} unknown")
            failed = True
        elif cost > args.max_cost_usd:
            print(f"\nBudget: estimated ${cost:.4f} exceeds ${args.max_cost_usd:.2f}")
            failed = True
    print("\nResult: FAILED" if failed else "\nResult: OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
