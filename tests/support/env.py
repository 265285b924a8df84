"""What the test machine offers: root, binaries, and whether we run under CI.

Locally a missing privilege or tool skips the test. Under ``CI=true`` it fails instead, so a CI machine that
lost a package cannot turn the namespace tiers into silent skips.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when the run is CI's (``CI=true``), where skips must become failures."""
    return os.environ.get("CI") == "true"


def _skip_or_fail(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this must not be skipped)", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    """Skip the calling test unless we are root; under CI, fail instead."""
    if os.geteuid() != 0:
        _skip_or_fail("needs root")


def require_binary(name: str) -> str:
    """Return the path of ``name`` on PATH; skip the calling test if it is missing (fail under CI)."""
    path = shutil.which(name)
    if path is None:
        _skip_or_fail(f"needs the {name!r} binary on PATH")
    return path
