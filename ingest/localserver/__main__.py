"""`python -m emopulse.ingest.localserver [--host H] [--port P]`: serve until Ctrl-C."""

from __future__ import annotations

import argparse

from .server import LocalBilibili


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A Bilibili-compatible local API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    args = parser.parse_args(argv)
    server = LocalBilibili(args.host, args.port)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
