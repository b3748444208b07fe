"""prefect.yaml (for `prefect deploy --all`) says what `emopulse deploy` does with the default
schedule table, and its file entrypoints load as Prefect loads them."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

from emopulse.flows.deploy import planned_deployments
from emopulse.flows.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_matches_the_default_schedule_table(monkeypatch) -> None:
    monkeypatch.delenv("EMOPULSE_CONFIG", raising=False)
    monkeypatch.chdir(ROOT)
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    planned = planned_deployments(Settings(_env_file=None, jobs={}))
    got = {d["name"]: d for d in spec["deployments"]}
    assert list(got) == [p["name"] for p in planned]
    for plan in planned:
        deployment = got[plan["name"]]
        assert deployment["entrypoint"] == "flows/service.py:" + plan["entrypoint"].rsplit(":", 1)[1]
        assert deployment["flow_name"] == plan["flow"] and deployment["work_pool"]["name"] == "emopulse"
        assert deployment["parameters"]["job"] == plan["name"]
        (schedule,) = deployment["schedules"]
        if plan["schedule"].kind == "interval":
            assert schedule == {"interval": plan["schedule"].seconds}
        else:
            assert schedule["cron"] == plan["schedule"].cron
        loaded = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
        assert loaded.name == plan["flow"]
