"""The command line: fast start, settings, file imports, read-only SQL formats, clear errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emopulse.flows.cli import app
from emopulse.flows.settings import load_settings
from emopulse.flows.steps import read_bvids, read_keywords
from emopulse.warehouse import Warehouse

runner = CliRunner()


def emopulse(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("emopulse")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_help_imports_no_heavy_module() -> None:
    code = ("import sys; from emopulse.flows.cli import app; "
            "heavy = [m for m in ('torch', 'transformers', 'prefect', 'streamlit', 'onnxruntime') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("sub", [["crawl", "videos"], ["crawl", "popular"], ["crawl", "search"], ["crawl", "emotes"],
                                 ["crawl", "status"], ["import", "comments"],
                                 ["train", "emoji"], ["sql"], ["demo"], ["run"], ["export", "emoji-counts"],
                                 ["models", "prepare"], ["predict", "emoji"]])
def test_every_command_has_help(sub: list[str]) -> None:
    result = runner.invoke(app, [*sub, "--help"])
    assert result.exit_code == 0, result.output
    assert "--home" in result.output


def test_settings_from_env_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "emopulse.toml").write_text('crawl_backoff_s = 0.25\nhome = "elsewhere"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMOPULSE_CRAWL_THROTTLE_S", "0.005")
    monkeypatch.setenv("EMOPULSE_BILIBILI_SESSDATA", "secret-cookie")
    settings = load_settings(home=tmp_path / "h")
    assert settings.crawl_throttle_s == 0.005  # fractions of a second
    assert settings.crawl_backoff_s == 0.25  # from the toml file
    assert settings.home == tmp_path / "h"  # the command line wins over the file
    assert settings.database == tmp_path / "h" / "warehouse.duckdb"
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())]
    assert not any("secret-cookie" in text for text in shown)  # however settings are printed
    assert settings.bilibili_sessdata.get_secret_value() == "secret-cookie"  # yet it is read


def test_read_bvids_lines_and_csv_with_bom(tmp_path: Path) -> None:
    lines = tmp_path / "ids.txt"
    lines.write_text("BV1MN4y177PB\n\n# a comment\nBV1AM4y1M71p\nBV1MN4y177PB\n", encoding="utf-8")
    assert read_bvids(lines) == ["BV1MN4y177PB", "BV1AM4y1M71p"]
    table = tmp_path / "ids.csv"
    table.write_text("\ufefftitle,bvid\nx,BV1N54y1z7t3\ny,BV1UJ411A75F\n", encoding="utf-8")
    assert read_bvids(table) == ["BV1N54y1z7t3", "BV1UJ411A75F"]
    bad = tmp_path / "bad.csv"
    bad.write_text("bvid\nBV1N54y1z7t3\nav170001\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.csv: not BV ids .*line 3: 'av170001'"):
        read_bvids(bad)


def test_read_keywords_skips_comments(tmp_path: Path) -> None:
    path = tmp_path / "k.txt"
    path.write_text("敬畏\n# 忽略\n惊讶  # 注释\n\n", encoding="utf-8")
    assert read_keywords(path) == ["敬畏", "惊讶"]


def _comments_csv(path: Path) -> Path:
    path.write_text(
        "\ufeff,uname,message,like,oid,label\n"
        "101,甲,今天好开心[doge][doge],3,170001,0\n"
        "102,乙,笑死我了[笑哭],1,170001,0\n"
        "103,丙,没有表情,0,170001,0\n",
        encoding="utf-8",
    )
    return path


def test_import_then_sql_in_every_format(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = runner.invoke(app, ["import", "comments", str(_comments_csv(tmp_path / "c.csv")), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["comments"] == 3

    sql = "SELECT rpid, sentence FROM comments ORDER BY rpid"
    as_csv = runner.invoke(app, ["sql", sql, "--format", "csv", "--home", str(home)])
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["rpid", "sentence"]
    assert rows[1] == ["101", "今天好开心"]  # emote tokens removed from what a model sees

    as_json = runner.invoke(app, ["sql", sql, "--format", "json", "--home", str(home)])
    assert json.loads(as_json.stdout)[2] == {"rpid": 103, "sentence": "没有表情"}

    out = tmp_path / "counts.csv"
    runner.invoke(app, ["clean", "--min-comments", "0", "--home", str(home)])
    exported = runner.invoke(app, ["export", "emoji-counts", "--out", str(out), "--home", str(home)])
    assert exported.exit_code == 0, exported.output
    counts = {r["emoji_alt"]: int(r["count"]) for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert counts == {"[doge]": 1, "[笑哭]": 1}


def test_unknown_layout_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "weird.csv"
    bad.write_text("foo,bar\n1,2\n", encoding="utf-8")
    result = emopulse("import", "comments", str(bad), "--home", str(tmp_path / "h"))
    assert result.returncode == 1
    assert "foo" in result.stderr and "bar" in result.stderr
    assert "Traceback" not in result.stderr


def test_second_writer_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    home = tmp_path / "h"
    with Warehouse.open(home / "warehouse.duckdb", command="test holder"):
        result = emopulse("import", "comments", str(_comments_csv(tmp_path / "c.csv")), "--home", str(home))
    assert result.returncode == 75
    assert f"warehouse busy (held by PID {os.getpid()}, command test holder" in " ".join(result.stderr.split())


def test_sql_before_any_snapshot_says_so(tmp_path: Path) -> None:
    result = emopulse("sql", "SELECT 1", "--home", str(tmp_path / "empty"))
    assert result.returncode == 1
    assert "snapshot" in result.stderr.lower()
