"""Realistic telemetry of one NMP recovery line, with faults on demand, on a simulated clock.

Production follows three shifts with slow-downs at each changeover and a slow random wander; the
cooling water follows the day. The process answer to those inputs (outlet temperatures, NMP left
after the condensers and the rotor, flows, energy) comes from the unit model
(``factory/unit.py``) with the line's parameters, evaluated once a simulated minute and
interpolated to each instrument's sample times; then each instrument adds its noise
(``factory/data/simulator.toml``). The soft sensor the alarms use is the same model, so a healthy
simulated line sits on its expectation and only a fault moves it off.

Faults (``Fault(kind, start, end=None, tag=None, size=None)``, times after the simulation start):

- ``fouling``: condenser 2's fouling resistance grows (``size`` per hour, as a fraction of the
  clean resistance); its outlet runs warmer than the soft sensor expects;
- ``rotor-saturation``: the zeolite rotor loses adsorption efficiency (``size``: fraction of the
  clean efficiency per hour); stack NMP climbs;
- ``drift``: one instrument (``tag``) drifts by ``size`` of its unit per hour;
- ``stuck``: one instrument repeats its last reading;
- ``dropout``: the link drops: no message at all between ``start`` and ``end``;
- ``bad-messages``: a share ``size`` of the messages is spoiled (bad JSON, a wrong unit, an
  unknown tag, a repeated timestamp), to exercise the quarantine; ``Telemetry.spoiled`` counts
  them per quarantine reason.

The clock is simulated: ``frames()`` yields an hour of samples at a time as fast as numpy goes;
``publish()`` sends them over MQTT as fast as the broker takes them or paced at a real-time
factor.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy.signal import lfilter

from batteryloop.errors import ValidationFailed
from batteryloop.factory import unit
from batteryloop.factory.facts import load
from batteryloop.factory.params import KELVIN, LineParams, load_line
from batteryloop.factory.tags import TagSet, load_tags
from batteryloop.factory.telemetry.payload import (
    DEFAULT_ROOT, TS, encode_frame, encode_samples, frame_topic,
)
from batteryloop.factory.telemetry.quarantine import Reason

FAULT_KINDS = ("fouling", "rotor-saturation", "drift", "stuck", "dropout", "bad-messages")
MODEL_STEP = timedelta(minutes=1)
FRAME_SCHEMA = {"ts": TS, "tag": pl.String, "value": pl.Float64, "unit": pl.String}
# Exogenous tags: set by production and weather, not by the unit model.
_DRIVERS = ("nmp.feed", "oven.exhaust.flow", "oven.exhaust.temp", "oven.exhaust.nmp",
            "workplace.nmp")


@dataclass(frozen=True)
class Fault:
    kind: str
    start: timedelta
    end: timedelta | None = None
    tag: str | None = None
    size: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValidationFailed(f"fault kind must be one of {', '.join(FAULT_KINDS)}",
                                   location="fault.kind")
        if self.end is not None and self.end <= self.start:
            raise ValidationFailed("a fault must end after it starts", location="fault.end")

    def active(self, offset_h: np.ndarray) -> np.ndarray:
        """Hours since the fault began at each point (0 before it; frozen after its end)."""
        start_h = self.start.total_seconds() / 3600
        end_h = np.inf if self.end is None else self.end.total_seconds() / 3600
        return np.clip(np.minimum(offset_h, end_h) - start_h, 0.0, None)


@dataclass
class Telemetry:
    """What a run produced besides the samples: messages spoiled per quarantine reason."""

    spoiled: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Reason})
    samples: int = 0
    messages: int = 0


def _fault_defaults() -> dict[str, Any]:
    return load("simulator")["faults"]


def _local_hours(epoch_s: np.ndarray, offset_h: float) -> np.ndarray:
    return ((epoch_s / 3600.0) + offset_h) % 24.0


class Simulator:
    """One line's telemetry from ``start`` on, reproducible for a given ``seed``."""

    def __init__(self, line: str = "demo", *, start: datetime | None = None, seed: int = 0,
                 faults: Sequence[Fault] = (), params: LineParams | None = None,
                 tags: TagSet | None = None) -> None:
        self.line = line
        self.start = (start or datetime(2025, 1, 6, tzinfo=UTC)).astimezone(UTC)
        self.faults = tuple(faults)
        self.params = params or load_line()
        self.tags = tags or load_tags()
        self.config = load("simulator")
        self.rng = np.random.default_rng(seed)
        self._wander_state = np.zeros(1)
        self._stuck_value: dict[str, float] = {}
        self.telemetry = Telemetry()
        defaults = _fault_defaults()
        for f in self.faults:
            if f.kind in ("drift", "stuck"):
                tag = f.tag or defaults[f.kind]["tag"]
                if tag not in self.tags:
                    raise ValidationFailed(f"unknown tag {tag!r}", location="fault.tag")

    # --- the process --------------------------------------------------------------------------

    def _production(self, epoch_s: np.ndarray) -> np.ndarray:
        """Coating rate as a fraction of design: changeover dips and a slow wander."""
        cfg = self.config["production"]
        hours = _local_hours(epoch_s, cfg["utc_offset_hours"])
        since_shift = np.min(
            [(hours - s) % 24.0 for s in cfg["shift_starts_hours"]], axis=0) * 60.0
        span, ramp = cfg["changeover_minutes"], cfg["ramp_minutes"]
        depth = np.clip(np.minimum(since_shift, span - since_shift) / ramp, 0.0, 1.0)
        rate = 1.0 - (1.0 - cfg["changeover_rate"]) * depth
        step_min = MODEL_STEP.total_seconds() / 60
        a = float(np.exp(-step_min / cfg["wander_minutes"]))
        shocks = self.rng.standard_normal(epoch_s.size) * cfg["wander_sd"] * np.sqrt(1 - a * a)
        wander, self._wander_state = lfilter([1.0], [1.0, -a], shocks, zi=self._wander_state)
        return np.clip(rate * (1.0 + wander), 0.05, 1.2)

    def _conditions(self, epoch_s: np.ndarray, production: np.ndarray) -> dict[str, np.ndarray]:
        p, amb = self.params, self.config["ambient"]
        offset_h = self.config["production"]["utc_offset_hours"]
        flow = np.full(epoch_s.size, p.design_flow_Nm3_h)
        feed = p.design_flow_Nm3_h * p.design_nmp_mg_Nm3 * 1e-6 * production  # kg/h
        out = {
            "oven.exhaust.flow": flow,
            "oven.exhaust.temp": np.full(epoch_s.size, p.design_temperature_K - KELVIN),
            "oven.exhaust.nmp": feed * 1e6 / flow,
        }
        swing = amb["cooling_water_swing_K"] * np.cos(
            2 * np.pi * (_local_hours(epoch_s, offset_h) - amb["warmest_hour"]) / 24.0)
        for i, s in enumerate(p.condensers):
            base = np.full(epoch_s.size, s.coolant_temperature_K - KELVIN)
            out[f"{s.name}.coolant.temp"] = base + swing if i == 0 else base
        return out

    def _faulted_params(self, offset_h: np.ndarray) -> LineParams:
        """The line's parameters with fouling and rotor efficiency as arrays over time."""
        defaults = _fault_defaults()
        p = self.params
        fouling = {s.name: np.full(offset_h.size, s.fouling) for s in p.condensers}
        efficiency = np.full(offset_h.size, p.rotor.adsorption_efficiency)
        for f in self.faults:
            if f.kind == "fouling":
                stage = defaults["fouling"]["stage"]
                rate = f.size if f.size is not None else defaults["fouling"]["growth_per_hour"]
                fouling[stage] = fouling[stage] + rate * f.active(offset_h)
            elif f.kind == "rotor-saturation":
                rate = (f.size if f.size is not None
                        else defaults["rotor-saturation"]["efficiency_loss_per_hour"])
                efficiency = efficiency * np.clip(1.0 - rate * f.active(offset_h), 0.0, 1.0)
        # The unit model computes with numpy throughout, so a stage's fouling and the rotor's
        # efficiency may be arrays (one value per time point) as well as numbers.
        stages = tuple(dataclasses.replace(s, fouling=fouling[s.name]) for s in p.condensers)
        rotor = dataclasses.replace(p.rotor, adsorption_efficiency=efficiency)
        return dataclasses.replace(p, condensers=stages, rotor=rotor)

    def truth(self, t0: datetime, t1: datetime) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Noise-free values of every tag, once a model step over [t0, t1]: (epoch s, tag ->
        array)."""
        step = MODEL_STEP.total_seconds()
        epoch0 = t0.timestamp()
        n = int(np.ceil((t1 - t0).total_seconds() / step)) + 1
        epoch_s = epoch0 + step * np.arange(n)
        production = self._production(epoch_s)
        conditions = self._conditions(epoch_s, production)
        offset_h = (epoch_s - self.start.timestamp()) / 3600.0
        balance = unit.simulate(self._faulted_params(offset_h), conditions)
        values = {**conditions, **{k: np.asarray(v, dtype=float) for k, v in balance.tags.items()}}
        plant = self.config["plant"]
        values["nmp.feed"] = conditions["oven.exhaust.nmp"] * conditions["oven.exhaust.flow"] * 1e-6
        values["workplace.nmp"] = plant["workplace_nmp_mg_m3"] * production
        return epoch_s, {t: np.broadcast_to(values[t], epoch_s.shape) for t in self.tags
                         if t in values}

    # --- the instruments ----------------------------------------------------------------------

    def _period_s(self, tag: str) -> float:
        rates = self.config["rates"]
        return float(rates.get(tag, rates["default_s"]))

    def _noise(self, tag: str, value: np.ndarray) -> np.ndarray:
        noise = self.config["noise"]
        if tag in noise["relative"]:
            return value * (1.0 + noise["relative"][tag] * self.rng.standard_normal(value.size))
        sd = noise["absolute"].get(tag, 0.0)
        return value + sd * self.rng.standard_normal(value.size)

    def chunk(self, t0: datetime, t1: datetime) -> pl.DataFrame:
        """Every instrument's samples with t0 <= ts < t1 (ts, tag, value, unit), by time."""
        epoch_s, values = self.truth(t0, t1)
        defaults = _fault_defaults()
        start_s = self.start.timestamp()
        parts = []
        for tag, true in values.items():
            period = self._period_s(tag)
            first = np.ceil(t0.timestamp() / period) * period
            times = np.arange(first, t1.timestamp(), period)
            if times.size == 0:
                continue
            measured = self._noise(tag, np.interp(times, epoch_s, true))
            # an instrument reads within its span
            measured = np.clip(measured, self.tags[tag].low, self.tags[tag].high)
            offset_h = (times - start_s) / 3600.0
            for f in self.faults:
                if f.kind == "drift" and (f.tag or defaults["drift"]["tag"]) == tag:
                    per_h = f.size if f.size is not None else defaults["drift"]["per_hour"]
                    measured = measured + per_h * f.active(offset_h)
                elif f.kind == "stuck" and (f.tag or defaults["stuck"]["tag"]) == tag:
                    measured = self._stick(tag, f, offset_h, measured)
            parts.append(pl.DataFrame({
                "ts": (times * 1e6).astype("int64"), "tag": tag, "value": measured,
                "unit": self.tags[tag].unit,
            }))
        frame = pl.concat(parts).with_columns(
            pl.col("ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        for f in self.faults:
            if f.kind == "dropout":
                lo = self.start + f.start
                hi = self.start + (f.end or f.start + timedelta(
                    minutes=defaults["dropout"]["minutes"]))
                frame = frame.filter((pl.col("ts") < lo) | (pl.col("ts") >= hi))
        return frame.sort("ts", "tag").cast(FRAME_SCHEMA)

    def _stick(self, tag: str, fault: Fault, offset_h: np.ndarray,
               measured: np.ndarray) -> np.ndarray:
        """From the fault's start the instrument repeats the reading it had just before."""
        start_h = fault.start.total_seconds() / 3600
        end_h = np.inf if fault.end is None else fault.end.total_seconds() / 3600
        stuck = (offset_h >= start_h) & (offset_h < end_h)
        before = np.flatnonzero(offset_h < start_h)
        if before.size:
            self._stuck_value[tag] = float(measured[before[-1]])
        if not stuck.any():
            return measured
        held = self._stuck_value.setdefault(tag, float(measured[np.flatnonzero(stuck)[0]]))
        return np.where(stuck, held, measured)

    def frames(self, duration: timedelta, chunk: timedelta = timedelta(hours=1)
               ) -> Iterator[pl.DataFrame]:
        """Successive chunks covering [start, start + duration)."""
        t = self.start
        end = self.start + duration
        while t < end:
            t1 = min(t + chunk, end)
            yield self.chunk(t, t1)
            t = t1

    def frame(self, duration: timedelta) -> pl.DataFrame:
        return pl.concat(list(self.frames(duration)))

    # --- the wire -----------------------------------------------------------------------------

    def messages(self, frame: pl.DataFrame, root: str = DEFAULT_ROOT
                 ) -> tuple[list[str], list[bytes], np.ndarray]:
        """Topics, payloads and epoch seconds of single-sample messages for ``frame``, spoiled
        as the faults ask."""
        topics = frame.select(
            pl.format("{}/{}/{}", pl.lit(root), pl.lit(self.line), pl.col("tag"))
        ).to_series().to_list()
        payloads = encode_samples(frame)
        when = frame["ts"].dt.epoch("us").to_numpy() / 1e6
        share = sum((f.size if f.size is not None else 0.01) for f in self.faults
                    if f.kind == "bad-messages")
        if share > 0 and payloads:
            topics, payloads, when = self._spoil(frame, topics, payloads, when, share, root)
        self.telemetry.samples += frame.height
        self.telemetry.messages += len(payloads)
        return topics, payloads, when

    def _spoil(self, frame: pl.DataFrame, topics: list[str], payloads: list[bytes],
               when: np.ndarray, share: float, root: str
               ) -> tuple[list[str], list[bytes], np.ndarray]:
        """Spoil a share of the messages, one way each, and count what the ingester should see."""
        n = len(payloads)
        # never the first sample of a tag in the chunk: a repeat needs one before it
        first = frame.with_row_index("i").group_by("tag").agg(pl.col("i").min())["i"].to_list()
        candidates = np.setdiff1d(np.arange(n), np.asarray(first, dtype=np.int64))
        picked = self.rng.choice(candidates, size=min(int(round(share * n)), candidates.size),
                                 replace=False)
        kinds = self.rng.integers(0, 4, size=picked.size)
        repeated = []
        for i, kind in zip(picked.tolist(), kinds.tolist(), strict=True):
            if kind == 0:
                payloads[i] = payloads[i][: len(payloads[i]) // 2]  # cut short: not JSON
                self.telemetry.spoiled[Reason.MALFORMED.value] += 1
            elif kind == 1:
                payloads[i] = payloads[i].replace(b'"unit":"', b'"unit":"x-')
                self.telemetry.spoiled[Reason.UNIT_MISMATCH.value] += 1
            elif kind == 2:
                topics[i] = f"{root}/{self.line}/no.such.tag"
                self.telemetry.spoiled[Reason.UNKNOWN_TAG.value] += 1
            else:  # the same message again right after the original: a duplicate
                repeated.append(i)
                self.telemetry.spoiled[Reason.DUPLICATE.value] += 1
        order = np.sort(np.concatenate([np.arange(n), np.asarray(repeated, dtype=np.int64)]),
                        kind="stable")
        return ([topics[j] for j in order], [payloads[j] for j in order], when[order])

    def publish(self, client: Any, duration: timedelta, *, root: str = DEFAULT_ROOT,
                qos: int = 1, speed: float | None = None, batch: bool = False,
                window: int = 500, wait: Callable[[int], object] | None = None) -> int:
        """Send ``duration`` of telemetry through a connected paho client; returns messages sent.

        ``speed``: simulated seconds per real second (None: as fast as the client takes them);
        ``batch``: one ``_batch`` frame message per simulated second instead of one per sample;
        ``wait(sent)``: called every ``window`` messages, e.g. to let a consumer catch up. MQTT
        has no back-pressure from subscriber to publisher, and a broker drops what a slow
        subscriber's queue cannot hold, so a test that sends faster than real time waits.
        """
        sent = 0
        began = time.monotonic()
        origin = self.start.timestamp()
        for frame in self.frames(duration):
            if batch:
                topics, payloads, when = self._frames(frame, root)
            else:
                topics, payloads, when = self.messages(frame, root)
            # pace in slices of a tenth of a real second
            due = (when - origin) / speed if speed else np.zeros(len(payloads))
            cuts = np.flatnonzero(np.diff(np.floor(due * 10))) + 1
            for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(payloads)], strict=True):
                if speed:
                    delay = began + due[lo] - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                for j in range(lo, hi):
                    last = client.publish(topics[j], payloads[j], qos=qos)
                    sent += 1
                    if wait is not None and sent % window == 0:
                        wait(sent)
        if sent:  # the client sends in order: when the last is out (acknowledged), all are
            last.wait_for_publish(timeout=max(60.0, sent / 1000))
        return sent

    def _frames(self, frame: pl.DataFrame, root: str
                ) -> tuple[list[str], list[bytes], np.ndarray]:
        topic = frame_topic(self.line, root)
        groups = frame.with_columns(sec=pl.col("ts").dt.truncate("1s")).partition_by(
            "sec", maintain_order=True)
        payloads = [encode_frame(g.drop("sec")) for g in groups]
        when = np.array([g["ts"][0].timestamp() for g in groups])
        self.telemetry.samples += frame.height
        self.telemetry.messages += len(payloads)
        return [topic] * len(payloads), payloads, when

