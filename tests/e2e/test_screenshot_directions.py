"""`make screenshots` follows the README's UI directions: every bold `A → B` direction of the "In
the Dagster UI" section is one it knows how to check, every picture has one, and a direction the
script does not know (a stale one) stops it before anything starts. (`make screenshots` itself
needs Chromium and a few minutes: it is not part of the suite.)"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.support.project import REPO


def screenshots_module():
    spec = importlib.util.spec_from_file_location("screenshots", REPO / "scripts" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["screenshots"] = module  # dataclasses look their module up there
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return module


def test_every_readme_direction_is_checked_and_every_picture_has_one() -> None:
    screenshots = screenshots_module()
    directions = screenshots.readme_directions((REPO / "README.md").read_text(encoding="utf-8"))
    assert ("Catalog", "fine_tuned_model", "Checks", "fine_tuned_model_accuracy") in directions
    assert ("Lineage", "▾ beside Materialize all", "Open launchpad") in directions  # wrapped over two lines
    screenshots.check_directions(directions)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for destination in screenshots.DESTINATIONS.values():
        if destination.picture:
            assert f"docs/images/{destination.picture}" in readme


def test_a_stale_direction_fails_before_anything_starts() -> None:
    screenshots = screenshots_module()
    stale = "## In the Dagster UI\n- **Assets → View global asset lineage → Materialize all** runs it.\n## Next\n"
    with pytest.raises(RuntimeError, match="cannot check: \\['Assets → View global asset lineage"):
        screenshots.check_directions(screenshots.readme_directions(stale))
    with pytest.raises(RuntimeError, match="no README direction leads to"):
        screenshots.check_directions([("Lineage", "Materialize all")])
