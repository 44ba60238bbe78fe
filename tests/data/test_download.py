"""download(): resume, retries, checksums and every failure as one line, against a local server."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import socket

import pytest
from archive_server import NAME, Server

from senet_jax.data import download as dl
from senet_jax.data import stl10_format


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> bytes:
    root = str(tmp_path_factory.mktemp("archive"))
    path = stl10_format.write_stl10_archive(root, 4, 2, num_unlabeled=0)
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def server(archive):
    s = Server(archive)
    yield s
    s.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(server, tmp_path, **kwargs):
    kwargs.setdefault("sha256", sha(server.data))
    kwargs.setdefault("progress", False)
    kwargs.setdefault("retry_wait_s", 0)
    kwargs.setdefault("chunk_bytes", 8192)
    return dl.download(server.url, str(tmp_path / NAME), **kwargs)


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_stl10_constants_match_tfds_registry():
    import tensorflow_datasets

    tsv = os.path.join(
        os.path.dirname(tensorflow_datasets.__file__), "datasets", "stl10", "checksums.tsv"
    )
    url, size, digest = read(tsv).decode().split()[:3]
    assert (url, int(size), digest) == (dl.STL10_URL, dl.STL10_BYTES, dl.STL10_SHA256)


def test_clean_download(server, tmp_path):
    path = fetch(server, tmp_path)
    assert path == str(tmp_path / NAME)
    assert read(path) == server.data
    assert os.listdir(tmp_path) == [NAME]  # no .partial left
    assert server.ranges == [None]
    # A verified file already in place is kept without a request.
    assert fetch(server, tmp_path) == path
    assert server.ranges == [None]


def test_dropped_connection_is_resumed_with_range(server, tmp_path, caplog):
    server.drop_at = len(server.data) // 2
    with caplog.at_level(logging.WARNING, "senet_jax"):
        path = fetch(server, tmp_path)
    assert read(path) == server.data
    assert server.ranges == [None, f"bytes={len(server.data) // 2}-"]
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert not os.path.exists(path + ".partial")


def test_partial_from_an_earlier_run_is_resumed(server, tmp_path):
    (tmp_path / (NAME + ".partial")).write_bytes(server.data[:1000])
    path = fetch(server, tmp_path)
    assert read(path) == server.data
    assert server.ranges == ["bytes=1000-"]


def test_complete_partial_and_416(server, tmp_path):
    (tmp_path / (NAME + ".partial")).write_bytes(server.data)
    assert read(fetch(server, tmp_path)) == server.data
    assert server.ranges == [f"bytes={len(server.data)}-"]


def test_server_ignoring_range_restarts(server, tmp_path, caplog):
    server.honor_range = False
    (tmp_path / (NAME + ".partial")).write_bytes(b"garbage" * 100)  # would corrupt if appended to
    with caplog.at_level(logging.WARNING, "senet_jax"):
        path = fetch(server, tmp_path)
    assert read(path) == server.data
    assert server.ranges == ["bytes=700-"]
    assert any("ignored the Range request" in r.getMessage() for r in caplog.records)


def test_server_errors_are_retried(server, tmp_path):
    server.unavailable = 2
    assert read(fetch(server, tmp_path, retries=2)) == server.data
    server.unavailable = 3
    with pytest.raises(
        dl.DownloadError, match=r"HTTP 503 Service Unavailable, 3 attempts in a row"
    ):
        fetch(server, tmp_path / "again", retries=2)


def test_interrupt_keeps_the_partial(server, tmp_path, monkeypatch):
    server.drop_at = 1000

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(dl.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch(server, tmp_path)
    assert os.listdir(tmp_path) == [NAME + ".partial"]  # kept for the next run to resume
    assert (tmp_path / (NAME + ".partial")).stat().st_size == 1000


def test_wrong_checksum_deletes_the_file(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(dl.DownloadError) as e:
        fetch(server, tmp_path, sha256=wrong)
    msg = str(e.value)
    assert "\n" not in msg
    assert server.url in msg and wrong in msg and sha(server.data) in msg
    assert "config.data.stl10_sha256" in msg
    assert os.listdir(tmp_path) == []


def test_http_404(server, tmp_path):
    with pytest.raises(dl.DownloadError, match=r"HTTP 404.*config\.data\.stl10_url") as e:
        dl.download(server.url + ".missing", str(tmp_path / NAME), sha256=None, progress=False)
    assert "\n" not in str(e.value)
    assert os.listdir(tmp_path) == []


def test_connection_refused(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(dl.DownloadError, match="refused the connection") as e:
        dl.download(f"http://127.0.0.1:{port}/{NAME}", str(tmp_path / NAME), sha256=None)
    assert "\n" not in str(e.value)
    assert os.listdir(tmp_path) == []


def test_unknown_host(tmp_path, monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(dl.DownloadError, match=r"host 'mirror\.invalid' not found"):
        dl.download(f"http://mirror.invalid/{NAME}", str(tmp_path / NAME), sha256=None)


def test_timeout_is_retried_then_reported(tmp_path, caplog):
    silent = socket.socket()  # accepts connections (backlog) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/{NAME}"
    try:
        with caplog.at_level(logging.WARNING, "senet_jax"):
            with pytest.raises(dl.DownloadError, match=r"no answer within 0\.2 s, 2 attempts"):
                dl.download(
                    url, str(tmp_path / NAME), sha256=None, timeout=0.2, retries=1, retry_wait_s=0
                )
    finally:
        silent.close()
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 1


def test_progress_lines_without_a_terminal(server, tmp_path, caplog):
    with caplog.at_level(logging.INFO, "senet_jax"):
        fetch(server, tmp_path, progress=None, chunk_bytes=1024)  # stderr is captured: no tty
    lines = [r.getMessage() for r in caplog.records if "downloaded" in r.getMessage()]
    assert 5 <= len(lines) <= 11, lines  # about one per 10%
    assert re.search(
        r"downloaded [\d.]+ KB of [\d.]+ KB \(\d+%\), [\d.]+ MB/s, ETA \d+ s", lines[0]
    )
    assert "(100%)" in lines[-1]


def test_progress_bar(server, tmp_path, capsys):
    fetch(server, tmp_path, progress=True)
    err = capsys.readouterr().err
    assert NAME in err and "100%" in err and "B/s" in err


def test_full_disk_names_folder_and_size_and_cleans_up(server, tmp_path, monkeypatch):
    class FullDisk:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self._f, name)

    def fake_open(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        return FullDisk(f) if "a" in mode else f

    monkeypatch.setattr(dl, "open", fake_open, raising=False)
    with pytest.raises(dl.DownloadError) as e:
        fetch(server, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{tmp_path} is full" in msg and f"({len(server.data)} bytes)" in msg
    assert os.listdir(tmp_path) == []
