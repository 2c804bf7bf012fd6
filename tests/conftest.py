"""Shared test set-up."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_id_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets an empty id cache directory (never the user's cache)."""
    monkeypatch.setenv("MATTERMOST_NOTIFY_CACHE_DIR", str(tmp_path_factory.mktemp("id-cache")))
