"""The checkout stands alone: no tracked file points at a folder outside it."""

import subprocess

from tests.support.project import REPO

# Spelt in pieces so that this file does not match itself: the sibling folder a development
# machine may hold beside the checkout, and that machine's workspace root.
OUTSIDE = (".." + "/shared", "/" + "work/")


def tracked_text_files() -> dict[str, str]:
    """Every tracked file that reads as UTF-8 text, by its path in the repository."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    texts = {}
    for name in names.decode().split("\0"):
        path = REPO / name
        if not name or not path.is_file():
            continue
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images, gzipped samples
    return texts


def test_no_tracked_file_cites_a_folder_outside_the_checkout() -> None:
    texts = tracked_text_files()
    assert "Makefile" in texts and ".ci/run" in texts
    citing = sorted(f"{name}: {outside}" for name, text in texts.items() for outside in OUTSIDE if outside in text)
    assert citing == []


def test_make_and_ci_do_not_set_tiktokens_cache() -> None:
    # Exact counts come from the locked package; nothing should need tiktoken's cache.
    texts = tracked_text_files()
    assert "TIKTOKEN_CACHE_DIR" not in texts["Makefile"] and "TIKTOKEN_CACHE_DIR" not in texts[".ci/run"]
