"""Building a shipped C++ source: cached by content, rebuilt on change, one-line errors."""

from __future__ import annotations

import ctypes
import subprocess

import pytest

from senet_jax.models.ops import native_library

SOURCE = 'extern "C" int answer() {{ return {value}; }}\n'


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(native_library, "cache_dir", lambda: tmp_path / "cache")
    return tmp_path / "cache"


def _source(tmp_path, value, name="answer.cc"):
    path = tmp_path / name
    path.write_text(SOURCE.format(value=value))
    return path


def test_builds_once_and_reuses_the_cached_library(tmp_path, cache, monkeypatch):
    source = _source(tmp_path, 42)
    path = native_library.build([source], "answer", [], [])
    assert path.is_relative_to(cache)
    assert ctypes.CDLL(str(path)).answer() == 42

    def no_compiler_runs(*args, **kwargs):
        raise AssertionError("compiled again although the cache holds the library")

    monkeypatch.setattr(subprocess, "run", no_compiler_runs)
    assert native_library.build([source], "answer", [], []) == path
    assert [p.name for p in path.parent.iterdir()] == ["libanswer.so"]  # no partial files left


def test_a_changed_source_or_flag_builds_a_new_library(tmp_path, cache):
    first = native_library.build([_source(tmp_path, 1)], "answer", [], [])
    second = native_library.build([_source(tmp_path, 2)], "answer", [], [])
    third = native_library.build([_source(tmp_path, 2)], "answer", [], [], flags=("-O0",))
    assert len({first.parent, second.parent, third.parent}) == 3
    assert ctypes.CDLL(str(second)).answer() == 2


def test_several_sources_make_one_library_keyed_by_each(tmp_path, cache):
    helper = tmp_path / "helper.cc"
    helper.write_text('extern "C" int helper() { return 5; }\n')
    uses = tmp_path / "uses.cc"
    uses.write_text('extern "C" int helper();\nextern "C" int twice() { return 2 * helper(); }\n')
    first = native_library.build([uses, helper], "pair", [], [])
    assert ctypes.CDLL(str(first)).twice() == 10
    helper.write_text('extern "C" int helper() { return 6; }\n')
    second = native_library.build([uses, helper], "pair", [], [])
    assert second != first and ctypes.CDLL(str(second)).twice() == 12


def test_a_compile_error_is_one_line_naming_the_source(tmp_path, cache):
    source = tmp_path / "broken.cc"
    source.write_text("int f() { return undeclared; }\n")
    with pytest.raises(native_library.BuildError) as e:
        native_library.build([source], "broken", [], [])
    message = str(e.value)
    assert message.startswith("compiling broken.cc failed: ") and "undeclared" in message
    assert "\n" not in message
    assert list(cache.rglob("*.so")) == []


def test_no_compiler_says_what_to_install(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(native_library.shutil, "which", lambda name: None)
    with pytest.raises(
        native_library.BuildError, match=r"no C\+\+ compiler on PATH \(install g\+\+\)"
    ):
        native_library.build([_source(tmp_path, 3)], "answer", [], [])


def test_an_unwritable_cache_is_one_line_with_the_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setattr(native_library, "cache_dir", lambda: blocker / "kernels")
    with pytest.raises(
        native_library.BuildError, match=r"cannot write the kernel cache .*XDG_CACHE_HOME"
    ):
        native_library.build([_source(tmp_path, 4)], "answer", [], [])
