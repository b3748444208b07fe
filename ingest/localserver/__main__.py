"""`python -m emopulse.ingest.localserver [--host H] [--port P]`: serve until Ctrl-C."""

from __future__ import annotations

import argparse

from .replay import Replay
from .server import LocalBilibili


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A Bilibili-compatible local API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--replay", action="store_true", help="replay the sample as a live stream")
    parser.add_argument("--replay-start", type=float, default=0.8, help="share of comments there at the start")
    parser.add_argument("--replay-minutes", type=float, default=30.0, help="minutes until all have appeared")
    args = parser.parse_args(argv)
    replay = Replay(args.replay_start, args.replay_minutes * 60) if args.replay else None
    server = LocalBilibili(args.host, args.port, replay=replay)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
