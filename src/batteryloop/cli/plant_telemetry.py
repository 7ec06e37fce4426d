"""Plant telemetry commands (under `batteryloop plant`): ingest, import, simulate, query, alarms.

    batteryloop plant tags
    batteryloop plant ingest-mqtt [--host H --port P --line L --seconds S]
    batteryloop plant import-csv export.csv --line demo [--timezone Asia/Shanghai]
    batteryloop plant simulate --line demo --hours 6 [--fault fouling@2h] [--mqtt] [--speed 60]
    batteryloop plant query demo --tag stack.nmp --start 2025-01-06T00:00:00Z --every 1h
    batteryloop plant quarantine demo
    batteryloop plant alarms demo [--evaluate --start ... --end ...] [--state attention]
    batteryloop plant watch demo
    batteryloop plant ack 12 --actor "operator A" --note "chiller reset"
    batteryloop plant compact demo
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer
from rich.table import Table

from batteryloop.cli.common import console, emit, guarded, unit_of_work
from batteryloop.errors import ValidationFailed

JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ROOT = Annotated[str, typer.Option("--root", help="topic root of the plant's telemetry")]
HOST = Annotated[str, typer.Option("--host", help="MQTT broker host")]
PORT = Annotated[int, typer.Option("--port", help="MQTT broker port")]
START = Annotated[Optional[str], typer.Option("--start", help="RFC 3339 time with offset")]
END = Annotated[Optional[str], typer.Option("--end", help="RFC 3339 time with offset")]
_SPAN_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"not an RFC 3339 time: '{text}'", location=option) from None
    if moment.tzinfo is None:
        raise ValidationFailed(f"'{text}' has no UTC offset", location=option)
    return moment


def _span(text: str, option: str) -> timedelta:
    """'90m', '2h', '1h30m', '45s' -> timedelta."""
    parts = _SPAN_PART.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValidationFailed(f"not a time span like 90m, 2h or 1h30m: '{text}'",
                               location=option)
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    return sum((timedelta(**{units[u]: float(n)}) for n, u in parts), timedelta(0))


def _fault(text: str) -> Any:
    """kind@start[-end][:tag][=size], e.g. fouling@2h, drift@1h:cond.outlet.nmp=30,
    dropout@3h-3h10m."""
    from batteryloop.factory.simulator import Fault

    got = re.match(r"^([a-z-]+)@([0-9.smhd]+)(?:-([0-9.smhd]+))?(?::([a-z0-9_.-]+))?"
                   r"(?:=([-0-9.eE]+))?$", text.strip())
    if not got:
        raise ValidationFailed(f"write a fault as kind@start[-end][:tag][=size]: '{text}'",
                               location="--fault")
    kind, start, end, tag, size = got.groups()
    return Fault(kind, _span(start, "--fault"), _span(end, "--fault") if end else None, tag,
                 float(size) if size else None)


def _render_counts(d: dict[str, Any]) -> None:
    q = d.get("quarantined", {})
    console.print(
        f"stored {d.get('stored', 0):,}, quarantined {d.get('quarantined_total', 0):,}"
        + (" (" + ", ".join(f"{k} {v:,}" for k, v in q.items() if v) + ")" if any(q.values())
           else ""), highlight=False)


def register(app: typer.Typer) -> None:
    """Add the telemetry commands to the `plant` group."""

    @app.command("tags")
    @guarded
    def tags_(deployment: Annotated[Optional[Path], typer.Option(
                  "--tags", help="a deployment file adding or replacing tags")] = None,
              as_json: JSON = False) -> None:
        """The tag list: unit, plausible range and location of every instrument."""
        from batteryloop.factory.tags import load_tags

        rows = [t.as_dict() for t in load_tags(deployment).values()]

        def render(data: list[dict[str, Any]]) -> None:
            table = Table("tag", "unit", "range", "location")
            for r in data:
                table.add_row(r["tag"], r["unit"], f"{r['range'][0]:g} .. {r['range'][1]:g}",
                              r["location"])
            console.print(table)

        emit(rows, as_json, render)

    @app.command("ingest-mqtt")
    @guarded
    def ingest_mqtt(
        host: HOST = "127.0.0.1", port: PORT = 1883, root: ROOT = "batteryloop/plant",
        line: Annotated[str, typer.Option("--line", help="one line, or + for all")] = "+",
        qos: Annotated[int, typer.Option("--qos", help="0 or 1")] = 1,
        client_id: Annotated[Optional[str], typer.Option(
            "--client-id", help="fixed id: with --persistent the broker keeps messages while away")
        ] = None,
        persistent: Annotated[bool, typer.Option("--persistent")] = False,
        seconds: Annotated[Optional[float], typer.Option(
            "--seconds", help="stop after this long (default: until Ctrl-C)")] = None,
        as_json: JSON = False,
    ) -> None:
        """Subscribe to the plant's telemetry and store it (quarantining what does not fit)."""
        from batteryloop.factory.telemetry.mqtt import Broker, MqttIngester
        from batteryloop.factory.telemetry.store import TelemetryStore

        if persistent and not client_id:
            raise ValidationFailed("a persistent session needs --client-id",
                                   location="--persistent")
        ingester = MqttIngester(TelemetryStore(), broker=Broker(host, port), root=root, line=line,
                                qos=qos, client_id=client_id, clean_session=not persistent)
        ingester.start()
        if not as_json:
            console.print(f"ingesting {ingester.topic} from {host}:{port} (Ctrl-C to stop)")
        began = time.monotonic()
        try:
            while seconds is None or time.monotonic() - began < seconds:
                time.sleep(min(5.0, seconds or 5.0))
                if not as_json:
                    _render_counts(ingester.counts.as_dict())
        except KeyboardInterrupt:
            pass
        counts = ingester.stop()
        emit(counts.as_dict() | {"received": ingester.received}, as_json, _render_counts)

    @app.command("import-csv")
    @guarded
    def import_csv_(
        files: Annotated[list[Path], typer.Argument(help="historian CSV exports (long or wide)")],
        line: Annotated[str, typer.Option("--line", help="the line the files belong to")],
        timezone: Annotated[Optional[str], typer.Option(
            "--timezone", help="IANA zone of times written without an offset")] = None,
        as_json: JSON = False,
    ) -> None:
        """Import historian CSV exports; each file is all or nothing, bad rows are quarantined."""
        from batteryloop.factory.tags import load_tags
        from batteryloop.factory.telemetry.historian import import_csv
        from batteryloop.factory.telemetry.store import TelemetryStore

        store, tags = TelemetryStore(), load_tags()
        results = [import_csv(f, store, tags, line, timezone=timezone).as_dict() for f in files]

        def render(data: list[dict[str, Any]]) -> None:
            for r in data:
                console.print(f"{r['path']} ({r['layout']}, {r['rows']:,} rows): ", end="",
                              highlight=False)
                _render_counts(r)

        emit(results, as_json, render)

    @app.command("simulate")
    @guarded
    def simulate_(
        line: Annotated[str, typer.Option("--line")] = "demo",
        hours: Annotated[float, typer.Option("--hours", help="simulated hours")] = 6.0,
        start: START = None,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        fault: Annotated[Optional[list[str]], typer.Option(
            "--fault", help="kind@start[-end][:tag][=size]; kinds: fouling, rotor-saturation, "
                            "drift, stuck, dropout, bad-messages; repeatable")] = None,
        mqtt: Annotated[bool, typer.Option(
            "--mqtt/--store", help="publish to the broker, or write straight to the store")
        ] = False,
        speed: Annotated[Optional[float], typer.Option(
            "--speed", help="simulated seconds per real second when publishing")] = None,
        host: HOST = "127.0.0.1", port: PORT = 1883, root: ROOT = "batteryloop/plant",
        as_json: JSON = False,
    ) -> None:
        """Simulate a line's telemetry (with faults) into the store or onto the broker."""
        from batteryloop.factory.simulator import Simulator
        from batteryloop.factory.telemetry.intake import Intake
        from batteryloop.factory.telemetry.store import TelemetryStore

        sim = Simulator(line, start=_time(start, "--start"), seed=seed,
                        faults=[_fault(f) for f in fault or []])
        duration = timedelta(hours=hours)
        if mqtt:
            import paho.mqtt.client as paho

            client = paho.Client(paho.CallbackAPIVersion.VERSION2)
            client.max_queued_messages_set(0)
            client.connect(host, port)
            client.loop_start()
            sent = sim.publish(client, duration, root=root, speed=speed)
            client.disconnect()
            client.loop_stop()
            out: dict[str, Any] = {"published": sent}
        else:
            intake = Intake(TelemetryStore(), sim.tags, root=root)
            for frame in sim.frames(duration):
                intake.messages(*sim.messages(frame, root)[:2])
            out = intake.counts.as_dict()
        out |= {"line": line, "start": sim.start.isoformat(), "hours": hours,
                "samples": sim.telemetry.samples, "messages": sim.telemetry.messages,
                "spoiled": sim.telemetry.spoiled}
        emit(out, as_json, lambda d: console.print(
            f"{d['line']}: {d['samples']:,} samples from {d['start']} over {d['hours']} h"
            + (f", {d['published']:,} messages published" if "published" in d
               else f", stored {d['stored']:,}, quarantined {d['quarantined_total']:,}"),
            highlight=False))

    @app.command("query")
    @guarded
    def query_(
        line: Annotated[str, typer.Argument()],
        tag: Annotated[Optional[list[str]], typer.Option("--tag", help="repeatable")] = None,
        start: START = None, end: END = None,
        every: Annotated[Optional[str], typer.Option(
            "--every", help="mean/min/max per window, e.g. 1h, 15m")] = None,
        limit: Annotated[int, typer.Option("--limit", help="most rows shown")] = 1000,
        as_json: JSON = False,
    ) -> None:
        """A line's samples (or window means with --every) by tag and time range."""
        from batteryloop.factory.telemetry.store import TelemetryStore

        store = TelemetryStore()
        t0, t1 = _time(start, "--start"), _time(end, "--end")
        if every:
            _span(every, "--every")
            frame = store.resample(line, tag, t0, t1, every=every)
        else:
            frame = store.query(line, tag, t0, t1)
        rows = [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
                for r in frame.head(limit).to_dicts()]

        def render(data: list[dict[str, Any]]) -> None:
            table = Table(*(frame.columns or ["ts", "tag", "value"]))
            for r in data:
                table.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in r.values()))
            console.print(table)
            console.print(f"{frame.height:,} rows" + (f", first {limit} shown"
                                                       if frame.height > limit else ""))

        emit({"rows": rows, "total": frame.height} if as_json else rows, as_json, render)

    @app.command("quarantine")
    @guarded
    def quarantine_(line: Annotated[str, typer.Argument()], start: START = None, end: END = None,
                    limit: Annotated[int, typer.Option("--limit")] = 50,
                    as_json: JSON = False) -> None:
        """What was quarantined for a line: counts per reason and the latest records."""
        from batteryloop.factory.telemetry import quarantine
        from batteryloop.factory.telemetry.store import TelemetryStore

        kept = TelemetryStore().quarantined(line, _time(start, "--start"), _time(end, "--end"))
        latest = kept.tail(limit).drop("raw").with_columns(
            received_at=kept.tail(limit)["received_at"].dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"))
        data = {"counts": quarantine.counts(kept), "total": kept.height,
                "latest": latest.to_dicts()}

        def render(d: dict[str, Any]) -> None:
            console.print(", ".join(f"{k} {v:,}" for k, v in d["counts"].items()),
                          highlight=False)
            table = Table("received", "reason", "source", "detail")
            for r in d["latest"]:
                table.add_row(r["received_at"], r["reason"], r["source"], r["detail"])
            console.print(table)

        emit(data, as_json, render)

    @app.command("alarms")
    @guarded
    def alarms_(
        line: Annotated[str, typer.Argument()],
        evaluate_: Annotated[bool, typer.Option(
            "--evaluate", help="first evaluate the rules over --start..--end and log changes")
        ] = False,
        start: START = None, end: END = None,
        state: Annotated[str, typer.Option(
            "--state", help="attention (active or unacknowledged), active or all")] = "attention",
        as_json: JSON = False,
    ) -> None:
        """The line's alarms; with --evaluate, run the rules over stored data first."""
        from batteryloop.factory import monitor
        from batteryloop.factory.alarm_log import AlarmLog
        from batteryloop.factory.telemetry.store import TelemetryStore

        if state not in ("attention", "active", "all"):
            raise ValidationFailed("must be attention, active or all", location="--state")
        out: dict[str, Any] = {}
        with unit_of_work() as session:
            if evaluate_:
                t0, t1 = _time(start, "--start"), _time(end, "--end")
                if t0 is None or t1 is None:
                    raise ValidationFailed("--evaluate needs --start and --end", location="--start")
                out["evaluation"] = monitor.evaluate(session, TelemetryStore(), line, t0,
                                                     t1).as_dict()
            log = AlarmLog(session)
            found = (log.attention(line) if state == "attention"
                     else log.occurrences(line, active=True if state == "active" else None))
            out["alarms"] = [o.as_dict() for o in found]

        def render(d: dict[str, Any]) -> None:
            if "evaluation" in d:
                e = d["evaluation"]
                console.print(f"evaluated {e['samples']:,} samples: {len(e['transitions'])} "
                              f"change(s), {e['recorded']} logged", highlight=False)
            table = Table("id", "raised", "alarm", "severity", "value", "limit", "state", "ack")
            for a in d["alarms"]:
                table.add_row(str(a["id"]), a["raised_at"], a["alarm"], a["severity"],
                              "-" if a["value"] is None else f"{a['value']:.4g}",
                              "-" if a["threshold"] is None else f"{a['threshold']:.4g}",
                              "active" if a["active"] else f"cleared {a['cleared_at']}",
                              a["acknowledged_by"] or "")
            console.print(table)

        emit(out, as_json, render)

    @app.command("watch")
    @guarded
    def watch_(line: Annotated[str, typer.Argument()],
               every: Annotated[float, typer.Option("--every", help="seconds")] = 10.0,
               as_json: JSON = False) -> None:
        """Evaluate the alarm rules on the newest data every few seconds (Ctrl-C to stop);
        ``--json`` prints one JSON object per alarm transition (JSON lines)."""
        from batteryloop.cli.common import database
        from batteryloop.factory import monitor
        from batteryloop.factory.telemetry.store import TelemetryStore

        def report(e: Any) -> None:
            for row in e.transitions.iter_rows(named=True):
                if as_json:
                    typer.echo(orjson.dumps(row, default=str).decode())
                    continue
                console.print(f"{row['at']:%Y-%m-%d %H:%M:%S} {row['kind']:8s} {row['alarm']}: "
                              f"{row['message']}", highlight=False)

        try:
            monitor.watch(database().session, TelemetryStore(), line, every=every, report=report)
        except KeyboardInterrupt:
            pass

    @app.command("ack")
    @guarded
    def ack_(occurrence: Annotated[int, typer.Argument(help="alarm id (from `plant alarms`)")],
             actor: Annotated[str, typer.Option("--actor", help="who acknowledges")],
             note: Annotated[Optional[str], typer.Option("--note")] = None,
             as_json: JSON = False) -> None:
        """Acknowledge an alarm (once; it may still be active)."""
        from batteryloop.factory.alarm_log import AlarmLog

        with unit_of_work() as session:
            done = AlarmLog(session).acknowledge(occurrence, actor, note).as_dict()
        emit(done, as_json, lambda d: console.print(
            f"alarm {d['id']} ({d['alarm']}) acknowledged by {d['acknowledged_by']}",
            highlight=False))

    @app.command("compact")
    @guarded
    def compact_(line: Annotated[str, typer.Argument()], as_json: JSON = False) -> None:
        """Merge each finished day's Parquet parts of a line into one file."""
        from batteryloop.factory.telemetry.store import TelemetryStore

        days = TelemetryStore().compact(line)
        emit({"line": line, "days_compacted": days}, as_json,
             lambda d: console.print(f"{d['days_compacted']} day(s) compacted"))
