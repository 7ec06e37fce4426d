"""Alarm rules on hand-made series with hand-calculated raise and clear times, and the alarm log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sqlalchemy import text

from batteryloop.errors import Conflict, NotFound, ValidationFailed
from batteryloop.factory.alarm_log import AlarmLog
from batteryloop.factory.alarms import AlarmEngine, RuleSet, load_rules
from batteryloop.factory.tags import load_tags

T0 = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)


def series(tag: str, values, every: timedelta = timedelta(seconds=10),  # type: ignore[no-untyped-def]
           start: datetime = T0) -> pl.DataFrame:
    values = list(values)
    return pl.DataFrame({
        "ts": [start + i * every for i in range(len(values))], "tag": tag,
        "value": [float(v) for v in values],
    }).with_columns(pl.col("ts").dt.cast_time_unit("us"))


def rules(tmp_path: Path, body: str, grid: str = 'step = "10s"\nstale = "5m"\n') -> RuleSet:
    path = tmp_path / "alarms.toml"
    path.write_text(f"[grid]\n{grid}\n{body}")
    return load_rules(path, load_tags())


def events(frame: pl.DataFrame) -> list[tuple[str, str, timedelta]]:
    return [(a, k, at - T0) for a, k, at in frame.select("alarm", "kind", "at").rows()]


def at(minutes: float = 0, seconds: float = 0) -> timedelta:
    return timedelta(minutes=minutes, seconds=seconds)


# --- rule files --------------------------------------------------------------------------------


def test_shipped_rules_load_with_limits_from_their_sources() -> None:
    shipped = load_rules(tags=load_tags())
    by_id = {r.id: r for r in shipped}
    assert by_id["workplace-nmp-short-term"].above == 80.0  # Directive 2009/161/EU
    assert by_id["workplace-nmp-8h"].above == 40.0
    # GB 30484: 50 mg/m3 NMHC as carbon = 50 / (5 x 12.011 / 99.13) mg/m3 of NMP
    assert by_id["stack-nmp-hourly"].above == pytest.approx(50 / (5 * 12.011 / 99.133), rel=1e-3)
    # 25 % of an LFL of 1.3 vol%: 0.25 x 0.013 x 99.13 kg/kmol / 22.414 Nm3/kmol = 14.37 g/Nm3
    assert by_id["oven-exhaust-lfl"].above == pytest.approx(14374, rel=1e-3)
    assert len(by_id["stuck"].tags) == len(load_tags())
    assert all(r.source or r.convention for r in shipped)


@pytest.mark.parametrize("body, complaint", [
    ('[[rules]]\nid = "x"\nkind = "threshold"\ntag = "stack.nmp"\nabove = 1\n', "source"),
    ('[[rules]]\nid = "x"\nkind = "threshold"\ntag = "nope"\nabove = 1\nconvention = "c"\n',
     "unknown tag"),
    ('[[rules]]\nid = "x"\nkind = "threshold"\ntag = "stack.nmp"\nlimit = "stack.nope.x"\n'
     'source = "s"\n', "limits.toml has no"),
    ('[[rules]]\nid = "x"\nkind = "rate"\ntag = "stack.nmp"\nabove = 1\nconvention = "c"\n',
     "window"),
    ('[[rules]]\nid = "x"\nkind = "stuck"\ntag = "stack.nmp"\nwindow = "10 min"\n'
     'convention = "c"\n', "not a duration"),
    ('[[rules]]\nid = "x"\nkind = "threshold"\ntag = "stack.nmp"\nabove = 1\nbelow = 0\n'
     'convention = "c"\n', "not several"),
])
def test_bad_rule_files_say_which_rule(tmp_path: Path, body: str, complaint: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        rules(tmp_path, body)
    assert "alarms.toml" in str(err.value) and complaint in str(err.value)


# --- each kind of rule -------------------------------------------------------------------------


def test_threshold_waits_for_its_delay_and_clears_below_the_deadband(tmp_path: Path) -> None:
    rs = rules(tmp_path, '[[rules]]\nid = "hi"\nkind = "threshold"\ntag = "stack.nmp"\n'
                         'above = 10.0\ndeadband = 2.0\ndelay = "30s"\nconvention = "test"\n')
    data = series("stack.nmp", [5] * 6 + [12] * 6 + [9] * 6 + [7] * 6)
    got = AlarmEngine(rs).evaluate(data, T0, T0 + at(4))
    # above from 60 s; held for 30 s (60, 70, 80, 90) -> raised at 90 s; 9 is inside the
    # deadband (> 8) so it stays raised until 7 arrives at 180 s
    assert events(got) == [("hi", "raised", at(seconds=90)), ("hi", "cleared", at(seconds=180))]
    assert got["value"].to_list() == [12.0, 7.0] and got["limit"].to_list() == [10.0, 10.0]


def test_eight_hour_mean_of_a_workplace_reading(tmp_path: Path) -> None:
    rs = rules(tmp_path, '[[rules]]\nid = "twa"\nkind = "threshold"\ntag = "workplace.nmp"\n'
                         'above = 40.0\naverage = "8h"\nconvention = "test"\n')
    data = series("workplace.nmp", [36] * 240 + [46] * 300, every=timedelta(minutes=1))
    got = AlarmEngine(rs).evaluate(data, T0, T0 + at(540))
    # mean of the readings so far > 40 once 6 x n46 > 4 x 240, i.e. at the 161st reading of 46,
    # taken at minute 240 + 160 = 400
    assert events(got) == [("twa", "raised", at(400))]


def test_rate_of_change_is_the_least_squares_slope(tmp_path: Path) -> None:
    body = ('[[rules]]\nid = "r{n}"\nkind = "rate"\ntag = "cond2.outlet.temp"\nabove = {lim}\n'
            'window = "2m"\nmin_samples = 6\nconvention = "test"\n')
    rs = rules(tmp_path, body.format(n=1, lim=0.99) + body.format(n=2, lim=1.01))
    ramp = series("cond2.outlet.temp", 13.0 + np.arange(60) / 6.0)  # 1 K per minute, 10 min
    got = AlarmEngine(rs).evaluate(ramp, T0 - at(seconds=10), T0 + at(10))
    # the slope of an exact ramp is 1 K/min from the 6th sample on (50 s): above 0.99, never 1.01
    assert events(got) == [("r1", "raised", at(seconds=50))]
    assert got["value"].item() == pytest.approx(1.0, abs=1e-6)


def test_stuck_reading_after_a_whole_window_of_repeats(tmp_path: Path) -> None:
    rs = rules(tmp_path, '[[rules]]\nid = "stuck"\nkind = "stuck"\ntags = ["cond1.outlet.temp"]\n'
                         'window = "10m"\nmin_samples = 10\nconvention = "test"\n')
    live = [35.0, 35.1] * 60  # 20 minutes of a live reading
    data = series("cond1.outlet.temp", live + [35.2] * 120 + [35.3, 35.4] * 30)
    got = AlarmEngine(rs).evaluate(data, T0, T0 + at(45))
    # frozen from 20:00; the 10-minute window (t - 10 min, t] holds only 35.2 from t = 29:50;
    # it moves again at 40:00
    assert events(got) == [("stuck", "raised", at(29, 50)), ("stuck", "cleared", at(40))]


def test_missing_data_for_the_line_and_for_one_tag(tmp_path: Path) -> None:
    rs = rules(tmp_path,
               '[[rules]]\nid = "link"\nkind = "missing"\nscope = "line"\ntags = ["*"]\n'
               'window = "60s"\nconvention = "test"\n'
               '[[rules]]\nid = "gone"\nkind = "missing"\ntags = ["stack.nmp", "stack.flow"]\n'
               'window = "3m"\nconvention = "test"\n')
    n = 6 * 20  # 20 minutes at 10 s
    keep = (np.arange(n) < 60) | (np.arange(n) >= 90)  # link down from 10:00 to 15:00
    flow = series("stack.flow", np.full(n, 30000.0)).filter(pl.Series(keep))
    nmp = series("stack.nmp", np.full(n, 7.0)).filter(pl.Series(keep) & (pl.arange(0, n) < 60))
    got = AlarmEngine(rs).evaluate(pl.concat([flow, nmp]), T0, T0 + at(20), since=T0)
    # last message 9:50; more than 60 s without one at 11:00; back at 15:00. stack.nmp never
    # returns: more than 3 minutes at 13:00 (and the flow, back at 15:00, never was 3 min away)
    assert events(got) == [
        ("link", "raised", at(11)),
        ("gone:stack.flow", "raised", at(13)), ("gone:stack.nmp", "raised", at(13)),
        ("gone:stack.flow", "cleared", at(15)), ("link", "cleared", at(15)),
    ]


def test_deviation_from_a_soft_sensor(tmp_path: Path) -> None:
    rs = rules(tmp_path, '[[rules]]\nid = "foul"\nkind = "deviation"\ntag = "cond2.outlet.temp"\n'
                         'above = 0.3\naverage = "15m"\nconvention = "test"\n',
               grid='step = "10s"\nstale = "5m"\nsoft_sensor_step = "1m"\n')
    n = 6 * 90
    cond1 = 35.0 + 0.5 * np.sin(np.arange(n) / 50.0)
    offset = np.where(np.arange(n) >= 360, 1.0, 0.0)  # the coil fouls at minute 60: +1 K
    data = pl.concat([series("cond1.outlet.temp", cond1),
                      series("cond2.outlet.temp", cond1 - 20.0 + offset)])

    def expected(wide: pl.DataFrame) -> pl.DataFrame:  # a toy soft sensor: 20 K below stage 1
        return wide.select((pl.col("cond1.outlet.temp") - 20.0).alias("cond2.outlet.temp"))

    got = AlarmEngine(rs, expected=expected).evaluate(data, T0, T0 + at(90))
    # 15-minute means: the residual is the share of +1 K readings in the window (90 of them);
    # above 0.3 once more than 27 are, i.e. 6 x + 1 > 27 at minute 60 + x: first at minute 65
    assert events(got) == [("foul", "raised", at(65))]


def test_a_stream_in_pieces_gives_the_same_alarms_as_the_whole(tmp_path: Path) -> None:
    rs = rules(tmp_path, '[[rules]]\nid = "hi"\nkind = "threshold"\ntag = "stack.nmp"\n'
                         'above = 10.0\ndeadband = 2.0\ndelay = "30s"\nconvention = "test"\n')
    rng = np.random.default_rng(3)
    data = series("stack.nmp", 9.0 + 3.0 * np.sin(np.arange(720) / 40.0)
                  + rng.normal(0, 0.5, 720))
    whole = AlarmEngine(rs).evaluate(data, T0, T0 + at(120))
    streaming = AlarmEngine(rs)
    pieces = []
    for k in range(12):  # ten minutes at a time, each with the lookback the rules need
        lo, hi = T0 + at(10 * k), T0 + at(10 * (k + 1))
        window = data.filter((pl.col("ts") > lo - rs.lookback()) & (pl.col("ts") <= hi))
        pieces.append(streaming.evaluate(window, lo, hi))
    assert len(whole) >= 4
    assert pl.concat(pieces).equals(whole)


# --- the alarm log -----------------------------------------------------------------------------


def _transitions(tmp_path: Path) -> pl.DataFrame:
    rs = rules(tmp_path, '[[rules]]\nid = "hi"\nkind = "threshold"\ntag = "stack.nmp"\n'
                         'above = 10.0\nseverity = "high"\nmessage = "stack high"\n'
                         'convention = "test"\n')
    data = series("stack.nmp", [5] * 6 + [12] * 6 + [5] * 6 + [15] * 6)
    return AlarmEngine(rs).evaluate(data, T0, T0 + at(4))


def test_alarm_log_raise_clear_acknowledge(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    transitions = _transitions(tmp_path)
    assert events(transitions) == [("hi", "raised", at(1)), ("hi", "cleared", at(2)),
                                   ("hi", "raised", at(3))]
    with db.session() as s:
        assert AlarmLog(s).record("l1", transitions) == 3
        assert AlarmLog(s).record("l1", transitions.tail(1)) == 0  # already open: not again
    with db.session() as s:
        log = AlarmLog(s)
        first, second = sorted(log.occurrences("l1"), key=lambda o: o.raised_at)
        assert (first.active, second.active) == (False, True)
        assert first.cleared_at == T0 + at(2) and first.value == 12.0 and first.threshold == 10.0
        assert [o.id for o in log.attention("l1")] == [second.id, first.id]
        acked = log.acknowledge(first.id, "operator on shift A", note="valve re-seated")
        assert acked.acknowledged_by == "operator on shift A" and acked.note == "valve re-seated"
        assert [o.id for o in log.attention("l1")] == [second.id]
        assert log.raised_state("l1") == {"hi": True}
    with db.session() as s:
        with pytest.raises(Conflict):
            AlarmLog(s).acknowledge(first.id, "someone else")
    with db.session() as s:
        with pytest.raises(NotFound):
            AlarmLog(s).acknowledge(999_999, "operator")
        with pytest.raises(ValidationFailed):
            AlarmLog(s).acknowledge(second.id, "  ")


def test_alarm_log_is_append_only(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        AlarmLog(s).record("l1", _transitions(tmp_path))
    for statement in ("UPDATE factory_alarms SET message = 'edited'",
                      "DELETE FROM factory_alarms"):
        with pytest.raises(Exception, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(text(statement))
    with db.session() as s:
        assert len(AlarmLog(s).occurrences("l1")) == 2
