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
    doctrees = tmp_path / "_build" / ".doctrees"  # Sphinx re-reads (re-executes) only
    cache.mkdir(parents=True)  # the pages whose text changed unless this goes too
    doctrees.mkdir()
    monkeypatch.setattr(cache_guard, "ROOT", tmp_path)

    cache_guard.main("_build")  # first build: stamp written (cache of unknown age dropped)
    cache.mkdir(exist_ok=True)
    doctrees.mkdir(exist_ok=True)
    cache_guard.main("_build")  # nothing changed: cache kept
    assert cache.exists() and doctrees.exists()
    src.write_text("x = 2\n")
    cache_guard.main("_build")  # code changed: cache and Sphinx's environment dropped
    assert not cache.exists() and not doctrees.exists()
    cache.mkdir()
    cache_guard.main("_build")
    assert cache.exists()
