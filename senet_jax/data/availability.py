"""Whether a dataset can be had without a long wait: the quick offline check and its error."""

from __future__ import annotations

import socket
import threading
import urllib.parse


class DatasetUnavailableError(ValueError):
    """The dataset is neither prepared in config.data.data_dir nor obtainable without a download."""


def unavailable(data, reason: str) -> DatasetUnavailableError:
    """The one-line error for a dataset that is not prepared and cannot be, naming the ways out."""
    where = data.data_dir or "the tfds default data dir"
    return DatasetUnavailableError(
        f"dataset {data.dataset!r} is not prepared in {where} and {reason}. Either set "
        "config.data.data_dir to a folder (local or gs://) holding the prepared dataset, or, for "
        "STL10, "
        "set config.data.stl10_archive to stl10_binary.tar.gz or its extracted stl10_binary/ "
        "folder."
    )


def can_reach(urls, timeout: float = 3.0) -> bool:
    """One quick TCP connect to the first download host, so offline machines fail in seconds.

    Run in a thread with a deadline: name resolution ignores socket timeouts and can hang for
    tens of seconds on a machine without DNS.
    """
    url = next((u for u in urls if urllib.parse.urlparse(u).hostname), None)
    if url is None:
        return False
    parts = urllib.parse.urlparse(url)
    address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    reached = []

    def connect():
        try:
            socket.create_connection(address, timeout).close()
            reached.append(True)
        except OSError:
            pass

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(reached)
