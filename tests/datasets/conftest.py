"""Keeps dataset tests off the network and out of the real home and data folders."""

import urllib.request

import pytest


@pytest.fixture(autouse=True)
def isolated_dataset_env(tmp_path, monkeypatch):
    """Points the cache at a fresh folder, unsets LAYERKIT_DATA and forbids network access."""
    monkeypatch.setenv("LAYERKIT_HOME", str(tmp_path / "layerkit_home"))
    monkeypatch.delenv("LAYERKIT_DATA", raising=False)

    def no_network(*args, **kwargs):
        # Not an OSError, so the loader cannot mistake it for "offline" and carry on.
        raise RuntimeError("tests must not download; monkeypatch the loader's fetch instead")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
