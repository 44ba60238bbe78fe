"""Resumable, checksum-verified downloads with the standard library only.

Why it is built this way:
- The STL10 archive is 2.6 GB from a single university server; connections drop. Bytes go to
  ``dest + ".partial"`` and a later attempt (or a later run) continues it with an HTTP Range
  request, so a drop costs seconds, not the whole download. Servers that ignore Range (answer
  200 instead of 206) are detected and the file is restarted, never silently corrupted.
- The SHA-256 is computed while the bytes stream in (a resumed partial is hashed once on
  start), so verification needs no second pass over 2.6 GB. The final name appears only after
  the digest matched (os.replace), so a file at dest_path is always a complete, verified one.
- Every failure is one ``DownloadError`` line naming the cause and the fix: the caller's log
  then says what to do, not a urllib traceback.
- Progress is a tqdm bar on a terminal and plain periodic log lines otherwise (batch jobs,
  CI logs), where a bar's carriage returns would make an unreadable log.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import NoReturn

log = logging.getLogger("senet_jax")

STL10_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
# As registered by tensorflow_datasets (datasets/stl10/checksums.tsv: url, size, sha256).
STL10_SHA256 = "f31fd99273a1acb8609c8db427cebb1de3f71de77758cdc0e22956e1289b9866"
STL10_BYTES = 2640397119

_USER_AGENT = "senet-jax-download/1"


class DownloadError(ValueError):
    """A download failed; the message is one line naming the cause and the fix."""


class _Dropped(Exception):
    """A transient failure (dropped connection, timeout, 5xx): worth another attempt."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # unreachable; keeps type checkers quiet


def _human_seconds(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


class _Progress:
    """A tqdm bar (terminal) or a log line every 10% or 30 s (anything else)."""

    def __init__(self, name: str, use_bar: bool, interval_s: float = 30.0, step: float = 0.1):
        self._name = name
        self._use_bar = use_bar
        self._interval_s = interval_s
        self._step = step
        self._bar = None
        self._total = None
        self._done = 0

    def start(self, total: int | None, done: int) -> None:
        self.close()
        self._total, self._done = total, done
        self._t0 = self._last_t = time.monotonic()
        self._start_done = done
        self._next_fraction = self._step * (int(done / total / self._step) + 1) if total else 1.0
        if self._use_bar:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=done,
                unit="B",
                unit_scale=True,
                unit_divisor=1000,
                desc=self._name,
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def update(self, n: int) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        fraction = self._done / self._total if self._total else None
        due = now - self._last_t >= self._interval_s
        if fraction is not None and fraction >= self._next_fraction:
            due = True
            self._next_fraction = self._step * (int(fraction / self._step) + 1)
        if due:
            self._last_t = now
            log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        rate = (self._done - self._start_done) / max(now - self._t0, 1e-9)
        text = f"{self._name}: downloaded {_human_bytes(self._done)}"
        if self._total:
            text += f" of {_human_bytes(self._total)} ({100 * self._done / self._total:.0f}%)"
        text += f", {rate / 1e6:.1f} MB/s"
        if self._total and rate > 0:
            text += f", ETA {_human_seconds(max(self._total - self._done, 0) / rate)}"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _Partial:
    """The .partial file, its length and the running SHA-256 of its bytes."""

    def __init__(self, path: str, url: str, chunk_bytes: int):
        self.path = path
        self.url = url
        self.folder = os.path.dirname(os.path.abspath(path))
        self.hasher = hashlib.sha256()
        self.total: int | None = None
        self.file = open(path, "ab")  # closed by finish(), close() or discard()
        self.offset = self.file.tell()
        if self.offset:
            with open(path, "rb") as f:  # hash what an earlier attempt left
                while block := f.read(chunk_bytes):
                    self.hasher.update(block)

    def restart(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.offset = 0
        self.hasher = hashlib.sha256()

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as e:
            self.discard()
            if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                free = shutil.disk_usage(self.folder).free
                need = (
                    f"{_human_bytes(self.total)} ({self.total} bytes)"
                    if self.total
                    else "more space (size unknown)"
                )
                raise DownloadError(
                    f"download of {self.url}: the disk holding {self.folder} is full "
                    f"({_human_bytes(free)} free, the file needs {need}); free space there or "
                    "download to a folder on a larger disk"
                ) from None
            raise DownloadError(
                f"download of {self.url}: cannot write {self.path} ({e.strerror or e}); "
                "check that the folder is writable, or download to another folder"
            ) from None
        self.offset += len(data)
        self.hasher.update(data)

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

    def discard(self) -> None:
        self.close()
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


def _file_sha256(path: str, chunk_bytes: int) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            hasher.update(block)
    return hasher.hexdigest()


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _open(url: str, part: _Partial, timeout: float):
    """The HTTP response for the bytes part still lacks, or 'complete?' on a 416.

    Kept apart from reading the body: every way of failing to connect maps to either a
    DownloadError (permanent: fix and rerun) or a _Dropped (transient: retried) here.
    """
    headers = {"User-Agent": _USER_AGENT}
    if part.offset:
        headers["Range"] = f"bytes={part.offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and part.offset:
            return "complete?"
        if e.code >= 500 or e.code in (408, 429):
            raise _Dropped(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(
            f"download of {url} failed: HTTP {e.code} {e.reason}; check the URL "
            "(config.data.stl10_url) or download the file by hand and set config.data.stl10_archive"
        ) from None
    except urllib.error.URLError as e:
        _url_error(url, e.reason, timeout)
    except TimeoutError:
        raise _Dropped(f"no answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as e:
        raise _Dropped(f"connection failed ({type(e).__name__}: {e})") from None


def _url_error(url: str, reason, timeout: float) -> NoReturn:
    """Raises for a URLError's reason: unknown host or refused is permanent, the rest transient."""
    host = urllib.parse.urlparse(url).netloc
    if isinstance(reason, socket.gaierror):
        raise DownloadError(
            f"download of {url} failed: host {host!r} not found ({reason.strerror or reason}); "
            "check the URL and the network (DNS, proxy), or download the file by hand and set "
            "config.data.stl10_archive"
        ) from None
    if isinstance(reason, ConnectionRefusedError):
        raise DownloadError(
            f"download of {url} failed: {host} refused the connection; check the URL and that "
            "the server is up, or download the file by hand and set config.data.stl10_archive"
        ) from None
    if isinstance(reason, TimeoutError):
        raise _Dropped(f"no answer within {timeout:g} s") from None
    raise _Dropped(f"cannot connect ({reason})") from None


def _body_length(url: str, response, part: _Partial) -> tuple[bool, int | None]:
    """(usable, length): whether the body continues part, and its byte count (None: unknown).

    Kept apart from the read loop: a server that ignores Range (200) restarts the file here
    and the body is read from byte 0; one that resumes at the wrong offset restarts it and
    the body is not usable (the caller asks again).
    """
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if part.offset and response.status == 200:
        log.warning(
            "download of %s: the server ignored the Range request (answered 200, not 206); "
            "restarting from the first byte",
            url,
        )
        part.restart()
    elif response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != part.offset:
            log.warning(
                "download of %s: the server resumed at the wrong offset (Content-Range %r, "
                "asked for byte %d); restarting from the first byte",
                url,
                response.headers.get("Content-Range"),
                part.offset,
            )
            part.restart()
            return False, None
        if match.group(3) != "*":
            length = int(match.group(3)) - part.offset
    return True, length


def _receive(response, part: _Partial, timeout: float, chunk_bytes: int, bar: _Progress) -> None:
    """Streams the body into part; a stall, drop or short body is a _Dropped (resumable)."""
    while True:
        try:
            block = response.read(chunk_bytes)
        except TimeoutError:
            raise _Dropped(f"no data for {timeout:g} s") from None
        except (OSError, http.client.HTTPException) as e:
            raise _Dropped(f"connection dropped ({type(e).__name__}: {e})") from None
        if not block:
            break
        part.write(block)
        bar.update(len(block))
    if part.total is not None and part.offset < part.total:
        raise _Dropped(f"connection closed after {part.offset} of {part.total} bytes")


def _attempt(url: str, part: _Partial, timeout: float, chunk_bytes: int, bar: _Progress) -> str:
    """One HTTP request; returns 'done', 'restart' (try again at once) or 'complete?' (416)."""
    response = _open(url, part, timeout)
    if isinstance(response, str):
        return response  # 'complete?'
    with response:
        usable, length = _body_length(url, response, part)
        if not usable:
            return "restart"
        part.total = part.offset + length if length is not None else None
        bar.start(part.total, part.offset)
        _receive(response, part, timeout, chunk_bytes, bar)
    return "done"


def _kept(dest_path: str, expected: str | None, chunk_bytes: int) -> bool:
    """Whether dest_path already holds the file (its digest matches, or none was given)."""
    if not os.path.isfile(dest_path):
        return False
    if expected is None or _file_sha256(dest_path, chunk_bytes) == expected:
        return True
    log.warning("%s exists but its SHA-256 is not %s; downloading it again", dest_path, expected)
    return False


def _retry_wait(
    url: str, reason: str, part: _Partial, failures: int, retries: int, wait_s: float
) -> float:
    """Seconds to wait before the next attempt; DownloadError once retries are used up.

    The wait doubles with each failure in a row (a struggling server gets room to recover).
    """
    if failures > retries:
        raise DownloadError(
            f"download of {url} failed: {reason}, {failures} attempts in a row "
            f"(resumable: {part.offset} bytes kept in {part.path}); check the network "
            "and run again, raise the timeout, or download the file by hand and set "
            "config.data.stl10_archive"
        ) from None
    wait = wait_s * 2 ** max(failures - 1, 0)
    log.warning(
        "download of %s: %s; retrying from byte %d in %.0f s (%s)",
        url,
        reason,
        part.offset,
        wait,
        f"failure {failures} of {retries} in a row" if failures else "bytes arrived",
    )
    return wait


def _fetch(
    url: str,
    part: _Partial,
    expected: str | None,
    bar: _Progress,
    *,
    retries: int,
    timeout: float,
    chunk_bytes: int,
    retry_wait_s: float,
) -> None:
    """Attempts until part holds the whole body: the retry and resume loop of download."""
    failures = 0
    while True:
        start = part.offset
        try:
            outcome = _attempt(url, part, timeout, chunk_bytes, bar)
        except _Dropped as e:
            failures = 0 if part.offset > start else failures + 1
            wait = _retry_wait(url, e.reason, part, failures, retries, retry_wait_s)
            bar.close()
            time.sleep(wait)
            continue
        if outcome == "complete?":
            # Range not satisfiable: the partial may hold the whole file already.
            if expected is not None and part.hasher.hexdigest() == expected:
                return
            log.warning(
                "download of %s: the server cannot resume at byte %d; restarting", url, start
            )
            part.restart()
            continue
        if outcome == "done":
            return


def _publish(url: str, part: _Partial, dest_path: str, expected: str | None) -> None:
    """Moves the finished partial to dest_path, only once its digest matched (or none given)."""
    actual = part.hasher.hexdigest()
    if expected is not None and actual != expected:
        part.discard()
        raise DownloadError(
            f"download of {url}: SHA-256 mismatch (expected {expected}, got {actual}); the file "
            "was deleted. For a mirror with a different archive set config.data.stl10_sha256, "
            "otherwise check the URL (config.data.stl10_url) and run again"
        )
    if expected is None:
        log.info("downloaded %s, SHA-256 %s (not verified: no checksum given)", dest_path, actual)
    os.replace(part.path, dest_path)


def download(
    url: str,
    dest_path: str,
    *,
    sha256: str | None,
    progress: bool | None = None,
    retries: int = 3,
    timeout: float = 30,
    chunk_bytes: int = 1 << 20,
    retry_wait_s: float = 2.0,
) -> str:
    """Downloads url to dest_path (resuming dest_path.partial) and returns dest_path.

    sha256: the expected hex digest; None skips the check (the digest is then logged so it can
    be pinned). An existing dest_path whose digest matches is kept without a request.
    progress: True for a tqdm bar, False for log lines, None for a bar only when stderr is a
    terminal. retries: how many failed attempts in a row (a dropped connection, a timeout, an
    HTTP 5xx) are tried again; an attempt that received bytes resets the count, so a long
    download survives many separate drops. Raises DownloadError.
    """
    dest_path = os.fspath(dest_path)
    expected = sha256.strip().lower() if sha256 else None
    if _kept(dest_path, expected, chunk_bytes):
        return dest_path
    os.makedirs(os.path.dirname(os.path.abspath(dest_path)), exist_ok=True)
    use_bar = sys.stderr.isatty() if progress is None else bool(progress)
    bar = _Progress(os.path.basename(dest_path), use_bar)
    part = _Partial(dest_path + ".partial", url, chunk_bytes)
    if part.offset:
        log.info("resuming %s from byte %d", part.path, part.offset)
    try:
        _fetch(
            url,
            part,
            expected,
            bar,
            retries=retries,
            timeout=timeout,
            chunk_bytes=chunk_bytes,
            retry_wait_s=retry_wait_s,
        )
        bar.close()
        part.finish()
    except BaseException:
        bar.close()
        if part.offset:
            part.close()  # kept for the next attempt (KeyboardInterrupt, errors above)
        else:
            part.discard()  # an empty file would only suggest there is something to resume
        raise
    _publish(url, part, dest_path, expected)
    return dest_path
