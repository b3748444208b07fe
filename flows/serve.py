"""Serving the dashboard: `streamlit run` on the app file, pointed at one emopulse home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["dashboard_command", "run_dashboard"]


def dashboard_command(*, port: int, address: str = "127.0.0.1") -> list[str]:
    import emopulse.dashboard  # the package only: importing app.py would run the app

    app_file = Path(emopulse.dashboard.__file__).with_name("app.py")
    return [sys.executable, "-m", "streamlit", "run", str(app_file),
            "--server.address", address, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]


def run_dashboard(home: Path, *, port: int) -> int:
    """Serve the dashboard in the foreground until interrupted; return streamlit's exit code."""
    env = {**os.environ, "EMOPULSE_HOME": str(Path(home).absolute())}
    print(f"dashboard: http://127.0.0.1:{port}  (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(dashboard_command(port=port), env=env)
    except KeyboardInterrupt:
        return 0
