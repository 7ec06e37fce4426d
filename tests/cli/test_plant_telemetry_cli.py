"""`batteryloop plant` telemetry commands: simulate, query, quarantine, alarms, ack, import-csv."""

from __future__ import annotations

import json
from pathlib import Path


def test_simulate_query_alarms_ack(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("plant", "simulate", "--line", "demo", "--hours", "1.5", "--start",
                       "2025-01-06T05:00:00Z", "--fault", "stuck@30m", "--fault",
                       "bad-messages@0s=0.01", "--json")
    assert code == 0, out
    sim = json.loads(out)
    assert sim["stored"] + sim["quarantined_total"] == sim["messages"]
    assert sim["quarantined"]["malformed"] == sim["spoiled"]["malformed"]

    code, out, _ = cli("plant", "query", "demo", "--tag", "stack.nmp", "--every", "1h", "--json")
    rows = json.loads(out)["rows"]
    assert code == 0 and [r["ts"][:16] for r in rows] == ["2025-01-06T05:00", "2025-01-06T06:00"]

    code, out, _ = cli("plant", "alarms", "demo", "--evaluate", "--start", "2025-01-06T05:00:00Z",
                       "--end", "2025-01-06T06:30:00Z", "--json")
    alarms = json.loads(out)["alarms"]
    assert code == 0 and [a["alarm"] for a in alarms] == ["stuck:cond1.outlet.temp"]

    code, out, _ = cli("plant", "ack", str(alarms[0]["id"]), "--actor", "operator A", "--json")
    assert code == 0 and json.loads(out)["acknowledged_by"] == "operator A"
    code, _, err = cli("plant", "ack", str(alarms[0]["id"]), "--actor", "operator B")
    assert code == 1 and "already acknowledged" in err


def test_import_csv_and_bad_options(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "export.csv"
    path.write_text("ts,stack.nmp [mg/Nm3],stack.flow [Nm3/h]\n"
                    "2025-01-06T05:00:00Z,7.5,30000\n2025-01-06T05:00:10Z,7.6,bad\n")
    code, out, _ = cli("plant", "import-csv", str(path), "--line", "l2", "--json")
    got = json.loads(out)[0]
    assert code == 0 and (got["layout"], got["stored"], got["quarantined"]["malformed"]) == (
        "wide", 3, 1)
    code, _, err = cli("plant", "simulate", "--fault", "melting@1h")
    assert code == 1 and "fault kind" in err
    code, _, err = cli("plant", "query", "l2", "--start", "2025-01-06 05:00")
    assert code == 1 and "offset" in err
