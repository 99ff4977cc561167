"""The book's execution cache is dropped exactly when interp_lib's code changes."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("cache_guard", ROOT / "book" / "_cache_guard.py")
cache_guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache_guard)


def test_cache_dropped_only_when_the_library_changes(tmp_path, monkeypatch):
    (tmp_path / "interp_lib").mkdir()
    src = tmp_path / "interp_lib" / "mod.py"
    src.write_text("x = 1\n")
    cache = tmp_path / "_build" / ".jupyter_cache"
    cache.mkdir(parents=True)
    monkeypatch.setattr(cache_guard, "ROOT", tmp_path)

    cache_guard.main("_build")  # first build: stamp written (cache of unknown age dropped)
    cache.mkdir(exist_ok=True)
    cache_guard.main("_build")  # nothing changed: cache kept
    assert cache.exists()
    src.write_text("x = 2\n")
    cache_guard.main("_build")  # code changed: cache dropped
    assert not cache.exists()
    cache.mkdir()
    cache_guard.main("_build")
    assert cache.exists()
