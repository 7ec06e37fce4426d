"""The NMP recovery line: the KPIs of a production day per hour, shift and day against the limits
(with their sources), live trends of chosen tags that poll ``/plant/live.json``, the condenser
outlets against the soft sensor, the alarm log with acknowledgement, and the daily report.

Who reads what follows ``api/routes/plant_telemetry.py`` and ``api/routes/factory.py``: the limits,
factors, tags and alarm rules are open; a plant's measurements and its alarm log need a signed-in
reader; acknowledging an alarm and evaluating the rules need a signed-in writer, recorded as the
one who acknowledged. The page reads through ``factory.overview`` and ``factory.alarm_log``, so it
shows what the API and the daily report compute from the same store.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from batteryloop.accounts.errors import Forbidden, Unauthorized
from batteryloop.accounts.service import Principal
from batteryloop.api.deps import Db, database
from batteryloop.errors import BatteryloopError, NotFound, ValidationFailed
from batteryloop.factory import monitor, overview, report
from batteryloop.factory.alarm_log import AlarmLog
from batteryloop.factory.alarms import load_rules
from batteryloop.factory.limits import load_factors, load_limits
from batteryloop.factory.params import load_line
from batteryloop.factory.tags import load_tags
from batteryloop.factory.telemetry.store import TelemetryStore
from batteryloop.web.pages import plots, stage_plots
from batteryloop.web.pages.common import Who, attachment, error_page, render
from batteryloop.web.signin import require_csrf

router = APIRouter(include_in_schema=False)
RECENT_ALARMS = 50  # the alarm list shows what needs attention and this many of the latest
MODEL_EVERY_POLLS = 6  # the soft-sensor panel (a run of the unit model) refreshes less often
Tags = Annotated[list[str] | None, Query(alias="tag", max_length=40)]
Line = Annotated[str | None, Query(max_length=64)]


def may_read_plant(who: Principal) -> bool:
    """Measurements and alarms: any signed-in reader, as the telemetry API has it."""
    return who.authenticated


def may_operate(who: Principal) -> bool:
    return who.authenticated and who.may("write") and who.viewer.organisation is not None


def _reader(who: Principal) -> None:
    if not may_read_plant(who):
        raise Unauthorized("a plant's measurements and alarms need a signed-in reader: sign in")


def _operator(who: Principal) -> str:
    """Who acknowledges, as the API records it: the user and the organisation it acts for."""
    if not who.authenticated:
        raise Unauthorized("acknowledging an alarm needs a signed-in operator: sign in")
    if not may_operate(who):
        raise Forbidden("acknowledging an alarm needs a writer ('write' role) of an organisation")
    return f"{who.viewer.user or 'user'} ({who.viewer.organisation})"


def _day(text: str | None) -> date | None:
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(f"'{text}' is not a date (YYYY-MM-DD)", location="day") from None


def _line(store: TelemetryStore, line: str | None) -> str | None:
    """The line asked for (it must have telemetry), else the first line with any."""
    lines = store.lines()
    if line:
        if line not in lines:
            raise NotFound(f"no telemetry for line '{line}' (lines with telemetry: "
                           f"{', '.join(lines) or 'none'})")
        return line
    return lines[0] if lines else None


def _known_line(store: TelemetryStore, line: str | None) -> str:
    chosen = _line(store, line)
    if chosen is None:
        raise NotFound("no telemetry stored yet: start the simulator or the ingester")
    return chosen


def _rows(frame: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in frame.iter_rows(named=True)]


def _open_context() -> dict[str, Any]:
    """What anyone may read: the limits and factors with their sources, the alarm rules."""
    factors = load_factors()
    return {"limits": load_limits().as_dict(), "factors": factors.as_dict(),
            "rules": [r.as_dict() for r in load_rules(tags=load_tags())]}


def _alarms(db: Db, line: str, zone: Any) -> dict[str, Any]:
    """What needs attention and the latest others, their times in plant time."""
    log = AlarmLog(db)
    attention = log.attention(line)
    shown = {o.id for o in attention}
    recent = [o for o in log.occurrences(line, limit=RECENT_ALARMS) if o.id not in shown]

    def view(o: Any) -> dict[str, Any]:
        local = {f"{k}_local": (getattr(o, k).astimezone(zone).strftime(overview.LOCAL_FORMAT)
                                if getattr(o, k) else None)
                 for k in ("raised_at", "cleared_at", "acknowledged_at")}
        return {**o.as_dict(), **local}

    return {"attention": [view(o) for o in attention], "recent": [view(o) for o in recent]}


@router.get("/plant", response_class=HTMLResponse)
def plant_page(request: Request, db: Db, who: Who, line: Line = None, day: str | None = None,
               tags: Tags = None, minutes: Annotated[int | None, Query(ge=1)] = None
               ) -> HTMLResponse:
    s = overview.settings()
    context: dict[str, Any] = {**_open_context(), "readable": may_read_plant(who),
                               "can_operate": may_operate(who), "settings": s, "line": None,
                               "lines": [], "kpis": None, "kpi_problem": None}
    if not context["readable"]:
        return render(request, "plant.html", context)
    store = TelemetryStore()
    try:
        chosen = _line(store, line)
        context.update(lines=store.lines(), line=chosen)
        if chosen is None:  # an empty store: the page says how to fill it
            return render(request, "plant.html", context)
        newest = overview.newest(store, chosen)
        latest_day = overview.production_day(newest, s) if newest else None
        shown_day = _day(day) or latest_day
        span = overview.window_minutes(minutes, s)
        tags_known = load_tags()
        chosen_tags = [t for t in (tags or s.trend_tags) if t]
        for n, t in enumerate(chosen_tags):
            if t not in tags_known:
                raise ValidationFailed(f"unknown tag '{t}'", location=f"tag[{n}]")
    except BatteryloopError as exc:
        return error_page(request, exc, back="/plant")
    try:
        kpis = overview.day_kpis(store, chosen, shown_day) if shown_day else None
    except BatteryloopError as exc:  # e.g. no complete hour on that day: the rest still shows
        kpis, context["kpi_problem"] = None, exc.message
    if kpis is not None:
        r = kpis.result
        context["kpis"] = {"day": r.days.row(0, named=True), "shifts": _rows(r.shifts),
                           "hours": _rows(r.hourly), "exceedances": r.exceedances,
                           "notes": kpis.notes, "currency": r.factors.currency}
    context.update(
        newest=newest, newest_local=newest.astimezone(s.zone).strftime(overview.LOCAL_FORMAT)
        if newest else None,
        day=shown_day, latest_day=latest_day,
        previous_day=shown_day - timedelta(days=1) if shown_day else None,
        next_day=shown_day + timedelta(days=1) if shown_day and latest_day
        and shown_day < latest_day else None,
        minutes=span, chosen_tags=chosen_tags, all_tags=list(tags_known.values()),
        alarms=_alarms(db, chosen, s.zone),
        live_config=plots.as_json({
            "url": "/plant/live.json", "line": chosen, "tags": chosen_tags, "minutes": span,
            "poll_ms": int(s.poll_seconds * 1000), "model_every": MODEL_EVERY_POLLS,
            "layouts": {t: stage_plots.trend_layout(t, tags_known[t].unit) for t in chosen_tags},
            "soft_tags": list(s.soft_tags),
            "soft_layout": stage_plots.soft_sensor_layout(
                [(t, tags_known[t].unit) for t in s.soft_tags]),
            "residual_layout": stage_plots.residual_layout(tags_known[s.soft_tags[0]].unit)}),
    )
    return render(request, "plant.html", context)


@router.get("/plant/live.json", response_model=None)
def live(who: Who, line: Annotated[str, Query(max_length=64)], tags: Tags = None,
         minutes: Annotated[int | None, Query(ge=1)] = None, model: bool = False
         ) -> JSONResponse:
    """The newest window of the chosen tags (and, with ``model``, the soft-sensor panel), for the
    page's charts to poll. Errors are RFC 9457 problems, as on the API."""
    _reader(who)
    store = TelemetryStore()
    chosen = _known_line(store, line)
    body: dict[str, Any] = {"trends": overview.trends(store, chosen, tags, minutes)}
    body["model"] = overview.model_vs_measured(store, chosen) if model else None
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _report(who: Principal, line: str, day: str) -> dict[str, Any]:
    _reader(who)
    store = TelemetryStore()
    chosen = _known_line(store, line)
    wanted = _day(day)
    assert wanted is not None  # the path pattern asks for a date
    kpis = overview.day_kpis(store, chosen, wanted)
    data = report.daily(kpis.result, wanted, line=f"{load_line().name} ({chosen})")
    data["notes"] = list(dict.fromkeys([*data["notes"], *kpis.notes]))
    return data


ReportLine = Annotated[str, Query(max_length=64)]
ReportDay = Annotated[str, Path(pattern=r"^\d{4}-\d{2}-\d{2}$")]


@router.get("/plant/report/{day}.pdf", response_model=None)
def report_pdf(request: Request, who: Who, line: ReportLine, day: ReportDay) -> Response:
    try:
        data = _report(who, line, day)
    except BatteryloopError as exc:
        return error_page(request, exc, back=f"/plant?line={line}")
    return attachment(report.daily_pdf(data), f"nmp-recovery-{line}-{day}.pdf")


@router.get("/plant/report/{day}.json", response_model=None)
def report_json(request: Request, who: Who, line: ReportLine, day: ReportDay) -> Response:
    try:
        data = _report(who, line, day)
    except BatteryloopError as exc:
        return error_page(request, exc, back=f"/plant?line={line}")
    return attachment(data, f"nmp-recovery-{line}-{day}.json")


@router.post("/plant/alarms/{occurrence}/ack", response_model=None,
             dependencies=[Depends(require_csrf)])
def acknowledge(request: Request, who: Who,
                occurrence: Annotated[int, Path(ge=1, le=2**63 - 1)],
                note: Annotated[str | None, Form(max_length=2000)] = None) -> Response:
    """The operator has seen the alarm: recorded with who and when; back to the alarm list."""
    try:
        actor = _operator(who)
        with database(request).session() as s:
            done = AlarmLog(s).acknowledge(occurrence, actor, (note or "").strip() or None)
    except BatteryloopError as exc:
        return error_page(request, exc, back="/plant")
    return RedirectResponse(f"/plant?line={done.line}#alarm-{done.id}", status_code=303)


@router.post("/plant/alarms/evaluate", response_model=None, dependencies=[Depends(require_csrf)])
def evaluate(request: Request, who: Who, line: Annotated[str, Form(max_length=64)],
             minutes: Annotated[int, Form(ge=1)] = 60) -> Response:
    """Evaluate the alarm rules over the newest ``minutes`` of data into the alarm log (as
    ``POST /api/v1/plant/lines/{line}/alarms/evaluate``; replaying a window changes nothing)."""
    try:
        _operator(who)
        store = TelemetryStore()
        chosen = _known_line(store, line)
        span = overview.window_minutes(minutes, overview.settings())
        newest = overview.newest(store, chosen)
        if newest is None:
            raise ValidationFailed(f"no samples stored for line '{chosen}'", location="line")
        with database(request).session() as s:
            monitor.evaluate(s, store, chosen, newest - timedelta(minutes=span), newest)
    except BatteryloopError as exc:
        return error_page(request, exc, back="/plant")
    return RedirectResponse(f"/plant?line={chosen}#alarms", status_code=303)
