"""The line simulator: consistent physics, faults that do what they say, every message through the
real broker accounted for, and each fault raising its alarm within a bounded simulated time while a
clean run raises none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from batteryloop.factory.alarms import AlarmEngine, load_rules
from batteryloop.factory.simulator import Fault, Simulator
from batteryloop.factory.soft_sensor import model_expected
from batteryloop.factory.tags import load_tags
from batteryloop.factory.telemetry.mqtt import MqttIngester
from batteryloop.factory.telemetry.store import TelemetryStore

from .plant_support import Publisher, broker, publisher, topic_root  # noqa: F401 - fixtures

# 13:00 on the line's clock (UTC+8): the 14:00 shift changeover falls inside every run
START = datetime(2025, 1, 6, 5, 0, tzinfo=UTC)
HOURS = 4
FAULT_AT = timedelta(hours=1, minutes=30)


def tag(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.filter(pl.col("tag") == name).sort("ts")


def test_same_seed_same_telemetry_and_consistent_physics() -> None:
    a = Simulator("l1", start=START, seed=7).frame(timedelta(hours=2))
    b = Simulator("l1", start=START, seed=7).frame(timedelta(hours=2))
    assert a.equals(b)
    tags = load_tags()
    assert set(a["tag"].unique()) == set(tags)
    assert a.group_by("tag").agg(pl.col("unit").first()).sort("tag")["unit"].to_list() == [
        tags[t].unit for t in sorted(tags)]
    # every reading inside its instrument's range
    ranges = tags.frame()
    inside = a.join(ranges, on="tag").select(
        ((pl.col("value") >= pl.col("tag_low")) & (pl.col("value") <= pl.col("tag_high"))).all())
    assert inside.item()
    # 10 s scan, GC every 5 minutes
    assert tag(a, "stack.nmp").height == 720 and tag(a, "product.purity").height == 24
    # the cold end is colder than the warm end, the stack cleaner than the condenser outlet
    mean = dict(a.group_by("tag").agg(pl.col("value").mean()).iter_rows())
    assert mean["cond2.coolant.temp"] < mean["cond2.outlet.temp"] < mean["cond1.outlet.temp"]
    assert mean["cond1.outlet.temp"] < mean["hx.outlet.temp"] < mean["oven.exhaust.temp"]
    assert mean["stack.nmp"] < mean["cond.outlet.nmp"] < mean["oven.exhaust.nmp"]


def test_shift_changeover_slows_the_coater() -> None:
    frame = Simulator("l1", start=START, seed=1).frame(timedelta(hours=2))
    feed = tag(frame, "nmp.feed").with_columns(minute=(pl.col("ts") - START).dt.total_minutes())
    # 14:00 local = 06:00 UTC, one hour in: 20 minutes at 40 % with 5-minute ramps
    during = feed.filter(pl.col("minute").is_between(66, 74))["value"].mean()
    before = feed.filter(pl.col("minute") < 55)["value"].mean()
    assert during / before == pytest.approx(0.4, abs=0.05)
    # the exhaust carries the feed: mg/Nm3 x Nm3/h = kg/h x 1e6
    wide = frame.pivot(on="tag", index="ts", values="value")
    implied = wide.select(pl.col("oven.exhaust.nmp") * pl.col("oven.exhaust.flow") * 1e-6
                          / pl.col("nmp.feed")).to_series().drop_nulls()
    assert implied.median() == pytest.approx(1.0, abs=0.01)


def test_faults_change_only_what_they_should() -> None:
    clean = Simulator("l1", start=START, seed=3).frame(timedelta(hours=3))
    at = START + timedelta(hours=1)
    runs = {
        kind: Simulator("l1", start=START, seed=3,
                        faults=[Fault(kind, timedelta(hours=1), end)]).frame(timedelta(hours=3))
        for kind, end in (("fouling", None), ("rotor-saturation", None), ("drift", None),
                          ("stuck", None), ("dropout", timedelta(hours=1, minutes=10)))
    }
    before = pl.col("ts") < at
    # same seed: identical before the fault
    for kind in ("fouling", "rotor-saturation", "drift", "stuck"):
        assert runs[kind].filter(before).equals(clean.filter(before)), kind

    def gap(kind: str, name: str) -> np.ndarray:
        f, c = tag(runs[kind], name), tag(clean, name)
        return (f["value"] - c["value"]).to_numpy()[-60:]  # the last 10 minutes

    assert gap("fouling", "cond2.outlet.temp").mean() > 0.5  # the coil runs warmer
    assert abs(gap("fouling", "cond1.outlet.temp").mean()) < 0.05  # stage 1 is untouched
    assert gap("rotor-saturation", "stack.nmp").mean() > 10
    assert abs(gap("rotor-saturation", "cond.outlet.nmp").mean()) < 5
    # drift: 60 mg/Nm3 per hour on the analyser; the last ten minutes are 110:00 to 119:50 after
    # it began, 114:55 on average: 60 x 1.91528 h = 114.92 (noise and process are identical)
    assert gap("drift", "cond.outlet.nmp").mean() == pytest.approx(114.92, abs=0.01)
    stuck = tag(runs["stuck"], "cond1.outlet.temp").filter(pl.col("ts") >= at)["value"]
    assert stuck.n_unique() == 1
    dropped = runs["dropout"].filter((pl.col("ts") >= at)
                                     & (pl.col("ts") < at + timedelta(minutes=10)))
    # ten minutes lost: 19 tags every 10 s, 2 every minute, 2 every 5 minutes
    assert dropped.is_empty()
    assert runs["dropout"].height == clean.height - (19 * 60 + 2 * 10 + 2 * 2)


def ingest(sim: Simulator, broker, store: TelemetryStore, root: str,  # type: ignore[no-untyped-def]
           publisher: Publisher, hours: float) -> MqttIngester:
    ingester = MqttIngester(store, root=root, broker=broker, flush_s=0.2).start()
    try:
        # at most a window of messages ahead of the ingester: the broker queue never overflows
        sent = sim.publish(publisher.client, timedelta(hours=hours), root=root, window=500,
                           wait=lambda n: ingester.wait_for(n - 500, timeout=60))
        assert publisher.wait_acked(sent)
        assert ingester.wait_for(sent, timeout=120)
    finally:
        ingester.stop()
    return ingester


def test_every_simulated_message_is_stored_or_quarantined(
        broker, topic_root: str, publisher: Publisher, tmp_path: Path) -> None:  # noqa: F811
    store = TelemetryStore(tmp_path / "telemetry")
    sim = Simulator("sim-a", start=START, seed=11,
                    faults=[Fault("bad-messages", timedelta(0), size=0.02)])
    ingester = ingest(sim, broker, store, topic_root, publisher, hours=1)
    counts = ingester.counts
    sent = sim.telemetry.messages
    assert counts.messages == sent > 6984  # 19 tags x 360 + 2 x 60 + 2 x 12, plus repeats
    stored, quarantined = store.count("sim-a"), store.quarantined("sim-a").height
    assert stored + quarantined == sent
    spoiled = sim.telemetry.spoiled
    assert counts.quarantined == spoiled and sum(spoiled.values()) > 100
    # a duplicate adds a message; the other spoils replace a sample
    lost = spoiled["malformed"] + spoiled["unit-mismatch"] + spoiled["unknown-tag"]
    assert stored == sim.telemetry.samples - lost


def _alarms(store: TelemetryStore, line: str) -> pl.DataFrame:
    rules = load_rules(tags=load_tags())
    engine = AlarmEngine(rules, expected=model_expected())
    data = store.query(line)
    return engine.evaluate(data, START, START + timedelta(hours=HOURS), since=START)


# fault -> (alarm it must raise, the longest the alarm may take after the fault starts, in
# simulated time, and any other alarm the fault may legitimately raise as well)
FAULTS = {
    "fouling": ("cond2-fouling", timedelta(minutes=45), set()),
    "rotor-saturation": ("rotor-breakthrough", timedelta(minutes=30), {"stack-nmp-hourly"}),
    "drift": ("cond-nmp-analyser", timedelta(minutes=60), set()),
    "stuck": ("stuck:cond1.outlet.temp", timedelta(minutes=12), set()),
    "dropout": ("link-lost", timedelta(seconds=90), set()),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*FAULTS, None])
def test_each_fault_raises_its_alarm_and_a_clean_run_none(
        kind: str | None, broker, topic_root: str, publisher: Publisher,  # noqa: F811
        tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path / "telemetry")
    faults = [] if kind is None else [
        Fault(kind, FAULT_AT, FAULT_AT + timedelta(minutes=10) if kind == "dropout" else None)]
    sim = Simulator("line-1", start=START, seed=5, faults=faults)
    ingest(sim, broker, store, topic_root, publisher, hours=HOURS)
    raised = _alarms(store, "line-1").filter(pl.col("kind") == "raised")
    if kind is None:
        assert raised.is_empty(), raised
        return
    alarm, bound, also = FAULTS[kind]
    first = raised.filter(pl.col("alarm") == alarm)["at"].min()
    assert first is not None, f"{alarm} never raised"
    latency = first - (START + FAULT_AT)
    assert timedelta(0) < latency <= bound
    assert set(raised["alarm"]) <= {alarm} | also
