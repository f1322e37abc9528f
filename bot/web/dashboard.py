"""The supervisor dashboard: report page, JSON per panel, CSV export, topic drill-down.

Supervisors only: every route but the Chart.js bundle depends on :func:`supervisor` (the
console's log-in, ``bot.web.auth.current_supervisor``: no session -> log-in page or 401, an agent
-> 403). The page is server-rendered; ``static/dashboard.js`` fetches each panel's
JSON with the page's filters and draws it with Chart.js, served from the project's
node_modules (``npm ci``; nothing from a CDN). Panels (query, CSV, charts) are one registry,
:data:`bot.analytics.dashboard.PANELS`: the routes and the page read it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from bot.analytics import dashboard as reports
from bot.db.base import utcnow
from bot.services.handoff import payload_description
from bot.settings import Settings
from bot.web.auth import AgentInfo, current_supervisor
from bot.web.deps import TEMPLATES, db_session, web_settings

router = APIRouter(prefix="/console/dashboard")  # under /console: the console's cookie path

CHARTJS_BUNDLE = "node_modules/chart.js/dist/chart.umd.js"  # Chart.js 4 UMD build (window.Chart), npm ci
NO_STORE = {"Cache-Control": "no-store"}


def supervisor(viewer: AgentInfo = Depends(current_supervisor)) -> AgentInfo:
    """The logged-in supervisor (log-in page / 401 without a session, 403 for an agent): the one
    place this router checks who asks (tests and the benchmark may override it)."""
    return viewer


def range_query(
    start: str | None = Query(None, max_length=10),
    end: str | None = Query(None, max_length=10),
    channel: str | None = Query(None, max_length=40),
) -> tuple[str | None, str | None, str | None]:
    """The page's, the panels' and the CSV's filter parameters, bounded in one place (parsed by
    :func:`_filters` in the route, after its own checks, so an unknown report is still a 404)."""
    return start, end, channel


def _filters(start: str | None, end: str | None, channel: str | None) -> reports.Filters:
    try:
        return reports.parse_filters(start, end, channel, utcnow().date())
    except reports.FilterError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


def _jsonable(data: Any) -> Any:  # noqa: ANN401
    return asdict(data) if hasattr(data, "__dataclass_fields__") else data


@router.get("", response_class=HTMLResponse, name="dashboard")
def dashboard_page(
    request: Request,
    viewer: AgentInfo = Depends(supervisor),
    session: Session = Depends(db_session),
    q: tuple[str | None, str | None, str | None] = Depends(range_query),
) -> HTMLResponse:
    """The dashboard page: filters, headline figures (server-rendered), canvases the script fills."""
    f = _filters(*q)
    conv = reports.conversation_report(session, f)
    agents = reports.agent_report(session, f)
    csat = reports.csat_report(session, f)
    query = {"start": f.start.isoformat(), "end": f.end.isoformat(), "channel": f.channel or ""}
    return TEMPLATES.TemplateResponse(request, "dashboard/index.html", {
        "viewer": viewer, "filters": f, "query": query, "channels": reports.channels(session),
        "conv": conv, "agents": agents, "csat": csat, "panels": list(reports.PANELS.values()),
    }, headers=NO_STORE)


@router.get("/api/{name}", name="dashboard_api")
def dashboard_api(
    name: str,
    viewer: AgentInfo = Depends(supervisor),
    session: Session = Depends(db_session),
    q: tuple[str | None, str | None, str | None] = Depends(range_query),
) -> JSONResponse:
    """One panel's figures as JSON for the page's charts."""
    if name not in reports.PANELS:
        raise HTTPException(status_code=404, detail="There is no such report.")
    f = _filters(*q)
    return JSONResponse({"report": name, "data": _jsonable(reports.compute(session, name, f))}, headers=NO_STORE)


@router.get("/export/{name}.csv", name="dashboard_csv")
def dashboard_csv(
    name: str,
    viewer: AgentInfo = Depends(supervisor),
    session: Session = Depends(db_session),
    q: tuple[str | None, str | None, str | None] = Depends(range_query),
) -> Response:
    """One report as a CSV file (formula-like cells quoted so spreadsheets do not run them)."""
    if name not in reports.PANELS:
        raise HTTPException(status_code=404, detail="There is no such report.")
    f = _filters(*q)
    out = io.StringIO()
    csv.writer(out).writerows(reports.csv_rows(name, reports.compute(session, name, f)))
    suffix = f"{f.start.isoformat()}_{f.end.isoformat()}" + (f"_{f.channel}" if f.channel else "")
    return Response(
        out.getvalue(), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="concierge-{name}-{suffix}.csv"', **NO_STORE},
    )


@router.get("/topics/{topic}", response_class=HTMLResponse, name="dashboard_topic")
def topic_page(
    request: Request,
    topic: str,
    start: str | None = Query(None, max_length=10),
    end: str | None = Query(None, max_length=10),
    viewer: AgentInfo = Depends(supervisor),
    session: Session = Depends(db_session),
) -> HTMLResponse:
    """A feedback topic's mentions in the range, each linking to its conversation."""
    if not topic or len(topic) > 80:
        raise HTTPException(status_code=404, detail="There is no such topic.")
    f = _filters(start, end, None)
    mentions = reports.topic_mentions(session, topic, f)
    return TEMPLATES.TemplateResponse(request, "dashboard/topic.html", {
        "viewer": viewer, "topic": topic, "filters": f, "mentions": mentions,
    }, headers=NO_STORE)


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse, name="dashboard_conversation")
def conversation_page(
    request: Request,
    conversation_id: int,
    viewer: AgentInfo = Depends(supervisor),
    session: Session = Depends(db_session),
) -> HTMLResponse:
    """A CRM conversation's transcript (redacted customer text, escaped by the template)."""
    conv, turns = reports.conversation_turns(session, conversation_id)
    if conv is None:
        raise HTTPException(status_code=404, detail="There is no such conversation.")
    # "/greet" and button payloads are not the customer's words: described, not quoted
    payloads = {i: payload_description(t.role, t.text) for i, t in enumerate(turns)}
    return TEMPLATES.TemplateResponse(request, "dashboard/conversation.html", {
        "viewer": viewer, "conv": conv, "turns": turns, "payloads": payloads,
    }, headers=NO_STORE)


@router.get("/chart.js", name="chartjs_bundle", include_in_schema=False)
def chartjs_bundle(settings: Settings = Depends(web_settings)) -> FileResponse:
    """Chart.js 4.4.9 from the project's node_modules (package-lock.json; no CDN)."""
    path = settings.project_root / CHARTJS_BUNDLE
    if not path.is_file():
        raise HTTPException(status_code=503, detail="Chart.js is not installed: run `make web` (npm ci).")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})
