"""The shipped Dockerfile and .dockerignore: the build context holds the code, the lock and the
shipped sample, nothing generated, and every path the Dockerfile copies.

No Docker engine runs here: the context is computed from the checkout with Docker's own
.dockerignore rules (patterns from the context root, `*`/`?` within a name, `**` across folders,
a pattern also covering everything under a matching folder, `!` re-including, the last match
deciding)."""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import subprocess

from tests.support.project import REPO

# What `make setup`, `make run`, `make test` and `make dev` leave in a checkout, whether or not
# this checkout has them right now.
GENERATED = [
    ".venv/bin/python", ".venv/lib/python3.11/site-packages/dagster/__init__.py", ".env",
    ".dagster_home/dagster.yaml", ".dagster_home/storage/runs.db", ".tmp_dagster_home_x1/dagster.yaml",
    "data/goodreads.duckdb", "data/files/training.jsonl", "data/local_openai/files/file-1.jsonl",
    "data/sample/notes.txt", "fine_tuning/__pycache__/definitions.cpython-311.pyc",
    "local_openai/http/__pycache__/router.cpython-311.pyc", "fine_tuning.egg-info/PKG-INFO",
    ".pytest_cache/v/cache/nodeids", "benchmarks/out/prep.json", "docs/images/new.png",
]


def tracked_files() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return {name for name in listed.decode().split("\0") if name and (REPO / name).is_file()}


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (already cleaned) as a regular expression over a relative path."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", i)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(re-includes, regex) for each line of .dockerignore, in order."""
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        cleaned = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((include, pattern_regex(cleaned)))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker would send `path`: the last rule matching it or one of its folders decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    sent = True
    for include, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            sent = include
    return sent


def checkout_files() -> set[str]:
    """Every file under the checkout now (generated ones included), relative to it."""
    found = set()
    for folder, subfolders, files in os.walk(REPO):
        relative = os.path.relpath(folder, REPO)
        subfolders[:] = [name for name in subfolders if name != ".git"]
        found.update(posixpath.normpath(posixpath.join(relative, name)) for name in files)
    return found


def build_context() -> set[str]:
    rules = ignore_rules()
    return {path for path in checkout_files() | set(GENERATED) if in_context(path, rules)}


def dockerfile_instructions() -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    parsed = []
    for text in logical:
        name, _, rest = text.partition(" ")
        # The exec form (a JSON array) or the shell form.
        parsed.append((name.upper(), json.loads(rest) if rest.startswith("[") else shlex.split(rest)))
    return parsed


def test_the_context_holds_nothing_generated_and_nothing_untracked() -> None:
    context = build_context()
    assert context <= tracked_files(), sorted(context - tracked_files())
    for path in GENERATED:
        assert path not in context
    assert not any(path.startswith(("tests/", "benchmarks/", "docs/", "scripts/", ".ci/")) for path in context)


def test_the_context_holds_the_code_the_lock_and_the_shipped_sample() -> None:
    context = build_context()
    needed = {path for path in tracked_files()
              if path.startswith(("fine_tuning/", "local_openai/", "config/", "data/sample/"))}
    needed |= {"pyproject.toml", "requirements.lock", "README.md", "dagster.yaml", "workspace.yaml"}
    assert needed <= context, sorted(needed - context)
    assert any(path.endswith(".sql") for path in context)  # package data the definitions read


def test_every_copy_source_is_in_the_context_and_the_lock_is_installed_as_hashed() -> None:
    context = build_context()
    instructions = dockerfile_instructions()
    copies = [arguments for name, arguments in instructions if name == "COPY"]
    assert copies
    for arguments in copies:
        for source in arguments[:-1]:
            assert source not in (".", "./"), "COPY . would send the whole context into the image"
            assert source in context or any(path.startswith(source.rstrip("/") + "/") for path in context), source
    runs = " ".join(" ".join(arguments) for name, arguments in instructions if name == "RUN")
    assert "--require-hashes -r requirements.lock" in runs and "--no-deps" in runs
    # --no-build-isolation installs the project with the lock's own setuptools and wheel.
    lock = (REPO / "requirements.lock").read_text()
    assert re.search(r"^setuptools==", lock, re.M) and re.search(r"^wheel==", lock, re.M)
    (command,) = [arguments for name, arguments in instructions if name == "CMD"]
    assert command[:5] == ["dagster", "api", "grpc", "-m", "fine_tuning"]
    assert command[command.index("--location-name") + 1] == "fine_tuning"


def test_the_ignore_rules_follow_docker() -> None:
    # Docker's documented examples: a folder pattern covers what is under it, `!` re-includes, last match wins.
    rules = [(False, pattern_regex("*")), (True, pattern_regex("src")), (False, pattern_regex("**/*.pyc"))]
    assert not in_context("notes.txt", rules) and in_context("src/a/b.py", rules)
    assert not in_context("src/a/b.pyc", rules) and not in_context("srcx/b.py", rules)
    assert pattern_regex("data/sample/*.json.gz").match("data/sample/books.json.gz")
    assert not pattern_regex("data/sample/*.json.gz").match("data/sample/sub/books.json.gz")
