"""A Bilibili-compatible local server for demos and tests, serving the bundled comments.

    with serve_local_bilibili() as server:
        BilibiliClient(server.url)...

Or from a shell: `python -m emopulse.ingest.localserver --port 8765`.
"""

from .replay import Replay
from .server import FAULT_KINDS, Fault, LocalBilibili, SeenRequest, Watcher, serve_local_bilibili

__all__ = [
    "FAULT_KINDS", "Fault", "LocalBilibili", "Replay", "SeenRequest", "Watcher", "serve_local_bilibili",
]
