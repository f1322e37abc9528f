"""The agent console: log-in, the inbox of escalated conversations, the live conversation, replies.

Why server-rendered with htmx and SSE: every piece of customer text goes through Jinja's autoescape
(the live stream sends text that the page inserts with ``textContent``), the pages work without a
build step, and the live view is one long GET that reads the CRM's turns table: the customer's
messages reach it through Rasa's event stream even while the bot is paused. Every agent action is
written to the audit log. Replies, resolve and hand-back go through Rasa's HTTP API
(bot/services/rasa_api.py) so they reach the customer on their own channel.

What agents read: the CRM's turns are redacted (names, addresses, cards...), which is right for the
dashboard and for agents who merely look, but the agent handling a conversation needs what was
really said. So for that agent (the one it is claimed by or assigned to) and for supervisors, the
conversation and its live stream come from Rasa's tracker (``GET /conversations/<id>/tracker``
with the console's API token), each access written to the audit log; when Rasa can't be reached the
page says so in a banner and shows the redacted CRM transcript instead. Everyone else gets the
redacted transcript, and a live stream asked for by anyone else is refused (403, audited).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from bot.db import handoffs as repo
from bot.db.session import session_scope
from bot.services import handoff as handoff_service
from bot.services import rasa_api
from bot.services.errors import ServiceError
from bot.settings import Settings
from bot.web.auth import (
    AgentInfo,
    authenticate,
    client_address,
    current_agent,
    current_supervisor,
    end_session,
    login_limiter,
    optional_agent,
    start_session,
)
from bot.web.deps import TEMPLATES, db_session, web_settings
from bot.web.security import check_csrf, csrf_token

router = APIRouter(prefix="/console")
HTMX_BUNDLE = "node_modules/htmx.org/dist/htmx.min.js"  # htmx 2.0.4 (npm ci; no CDN)
CANNED_PATH = Path(__file__).resolve().parent.parent / "content" / "canned.yml"
STREAM_POLL_S = 0.25  # how often the live view looks for new turns
STREAM_MAX_S = 600  # a stream ends after this long; EventSource reconnects with Last-Event-ID
LIVE_POLL_S = 0.5  # how often the handling agent's live view reads Rasa's tracker (a GET each time)
LIVE_UNAVAILABLE = ("The chat server can't be reached, so this is the CRM's redacted transcript "
                    "(names, addresses and cards replaced). Reload to try the live conversation again.")
RESOLVED_MESSAGE = "Thanks for your patience! {name} has marked this conversation as resolved. I'm back if you need me."
HANDED_BACK_MESSAGE = "{name} has handed you back to me, the assistant. How else can I help?"
CLOSING_MESSAGES = {  # (resolved, handed back) in the conversation's language
    "en": (RESOLVED_MESSAGE, HANDED_BACK_MESSAGE),
    "zh": ("感谢您的耐心等待！{name}已将这次咨询标记为已解决。之后有需要随时找我。",
           "{name}已把对话交回给我（智能助手）。还有什么可以帮您？"),
}


def canned_responses(path: Path = CANNED_PATH, language: str = "en") -> list[dict[str, str]]:
    """bot/content/canned.yml: [{title, text}] (editable by the support team); a conversation in
    Chinese gets ``canned.zh.yml`` beside it."""
    if language != "en":
        path = path.with_name(f"{path.stem}.{language}{path.suffix}")
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or []
    except FileNotFoundError:
        return []
    return [{"title": str(r.get("title", ""))[:80], "text": str(r.get("text", ""))[:2000]}
            for r in raw if isinstance(r, dict) and r.get("text")]


def audit(session: Session, request: Request, agent: AgentInfo | None, action: str, target: str = "",
          detail: str = "") -> None:
    repo.audit(session, agent.id if agent else None, action, target, detail, client_address(request))


def render(request: Request, name: str, agent: AgentInfo | None, status: int = 200, **ctx: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request, f"console/{name}", {"agent": agent, "csrf": csrf_token(request), **ctx}, status_code=status
    )


def back_to(request: Request, handoff_id: int) -> Response:
    """After a form post: htmx gets 204 (the live view updates itself), a plain form a redirect."""
    if request.headers.get("HX-Request"):
        return Response(status_code=204)
    return RedirectResponse(str(request.url_for("console_handoff", handoff_id=handoff_id)), status_code=303)


def handles(agent: AgentInfo, assigned_to: int | None) -> bool:
    """Who may read what was really said: the agent the conversation is claimed by or assigned to, or a supervisor."""
    return agent.is_supervisor or (assigned_to is not None and assigned_to == agent.id)


def live_turns(events: list[dict[str, Any]], after: int = 0) -> list[handoff_service.TurnView]:
    """The customer's and the bot's messages in a Rasa tracker's events, unredacted.

    Each turn's id is its event's position in the tracker (1-based, ``include_events=ALL``), so the
    live stream resumes after the last one shown, as it does with CRM turn ids.
    """
    out = []
    for position, event in enumerate(events, start=1):
        role = event.get("event")
        if position <= after or role not in ("user", "bot"):
            continue
        text = event.get("text") if isinstance(event.get("text"), str) else ""
        metadata = event.get("metadata") if isinstance(event.get("metadata"), dict) else {}
        parse = event.get("parse_data") if isinstance(event.get("parse_data"), dict) else {}
        sentiment = parse.get("sentiment") if isinstance(parse.get("sentiment"), dict) else {}
        label = sentiment.get("label") if isinstance(sentiment.get("label"), str) else None
        head, sep, _ = text[:120].partition(handoff_service.AGENT_MARK)
        from_agent = None
        if role == "bot" and sep and head:
            from_agent = head  # a person's reply (rasa_api.send_agent_reply)
        elif role == "bot" and metadata.get(rasa_api.PERSON_KEY):
            from_agent = str(metadata.get("agent") or "support")[:60]
        described = handoff_service.payload_description(role, text)
        stamp = event.get("timestamp")
        at = datetime.fromtimestamp(stamp if isinstance(stamp, (int, float)) and 0 <= stamp < 4e9 else 0,
                                    tz=timezone.utc).replace(tzinfo=None)
        out.append(handoff_service.TurnView(position, role, described or text, at, from_agent, label,
                                            described is not None))
    return out


# ---------------------------------------------------------------- assets
@router.get("/htmx.js", name="console_htmx")
def htmx_bundle(settings: Settings = Depends(web_settings)) -> FileResponse:
    path = settings.project_root / HTMX_BUNDLE
    if not path.is_file():
        raise HTTPException(status_code=503, detail="htmx is not installed: run `make web` (npm ci).")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})


# ---------------------------------------------------------------- log-in
@router.get("/login", response_class=HTMLResponse, name="console_login")
def login_form(request: Request, agent: AgentInfo | None = Depends(optional_agent)) -> Response:
    if agent is not None:
        return RedirectResponse(str(request.url_for("console_inbox")), status_code=303)
    return render(request, "login.html", None)


@router.post("/login", name="console_login_post")
def login(
    request: Request,
    username: str = Form("", max_length=200),
    password: str = Form("", max_length=500),
    csrf: str = Form("", max_length=200),
    session: Session = Depends(db_session),
    settings: Settings = Depends(web_settings),
) -> Response:
    check_csrf(request, csrf)
    limiter = login_limiter(request, settings)
    user_key = "user:" + username.strip().lower()[:60]
    if not limiter.allow("ip:" + client_address(request)) or not limiter.allow(user_key):
        repo.audit(session, None, "login_limited", username[:60], "", client_address(request))
        return render(request, "login.html", None, status=429,
                      error="Too many attempts. Wait a minute and try again.")
    agent = authenticate(session, username, password)
    if agent is None:
        repo.audit(session, None, "login_failed", username[:60], "", client_address(request))
        return render(request, "login.html", None, status=401, error="Wrong user name or password.")
    response = RedirectResponse(str(request.url_for("console_inbox")), status_code=303)
    start_session(session, response, agent, settings)
    audit(session, request, agent, "login")
    return response


@router.post("/logout", name="console_logout")
def logout(
    request: Request,
    csrf: str = Form("", max_length=200),
    agent: AgentInfo = Depends(current_agent),
    session: Session = Depends(db_session),
) -> Response:
    check_csrf(request, csrf)
    response = RedirectResponse(str(request.url_for("console_login")), status_code=303)
    end_session(session, request, response)
    audit(session, request, agent, "logout")
    return response


# ---------------------------------------------------------------- inbox
@router.get("", response_class=HTMLResponse, name="console_inbox")
@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def inbox(request: Request, agent: AgentInfo = Depends(current_agent),
          session: Session = Depends(db_session)) -> HTMLResponse:
    items = handoff_service.inbox(session)
    template = "_inbox_rows.html" if request.headers.get("HX-Request") else "inbox.html"
    return render(request, template, agent, items=items, agents=repo.agents(session))


@router.get("/h/{handoff_id}", response_class=HTMLResponse, name="console_handoff")
def conversation(handoff_id: int, request: Request, agent: AgentInfo = Depends(current_agent),
                 session: Session = Depends(db_session),
                 settings: Settings = Depends(web_settings)) -> HTMLResponse:
    """The conversation: live from Rasa's tracker for the agent handling it, else the CRM's redacted turns."""
    try:
        view = handoff_service.view(session, handoff_id)
    except ServiceError as exc:
        raise HTTPException(status_code=404, detail=exc.message) from exc
    live, unavailable = None, None
    if handles(agent, view.agent_id):
        try:
            live = live_turns(rasa_api.tracker_events(settings, view.sender_id))
            audit(session, request, agent, "view_live", f"handoff:{handoff_id}", f"{len(live)} turns from the tracker")
        except ServiceError as exc:
            unavailable = LIVE_UNAVAILABLE
            audit(session, request, agent, "view_live", f"handoff:{handoff_id}",
                  f"chat server unavailable ({exc.code}): redacted CRM transcript shown")
    turns = live if live is not None else handoff_service.turns(session, view.sender_id)
    canned = canned_responses(language=handoff_service.conversation_language(turns))
    return render(request, "conversation.html", agent, view=view, turns=turns, canned=canned,
                  agents=repo.agents(session), last_turn=turns[-1].id if turns else 0,
                  mood=handoff_service.live_sentiment(turns), live=live is not None, unavailable=unavailable,
                  handling=handles(agent, view.agent_id))


def _turn_json(t: handoff_service.TurnView) -> str:
    return json.dumps({"id": t.id, "role": t.role, "text": t.text, "at": t.at.isoformat(timespec="seconds"),
                       "sentiment": t.sentiment, "agent": bool(t.from_agent), "payload": t.payload})


@router.get("/h/{handoff_id}/stream", name="console_stream")
async def stream(handoff_id: int, request: Request, after: int = 0, live: bool = False,
                 agent: AgentInfo = Depends(current_agent),
                 settings: Settings = Depends(web_settings)) -> StreamingResponse:
    """Server-sent events: each new turn of the conversation (``event: turn``), and its status.

    ``live``: the turns come unredacted from Rasa's tracker, for the agent handling the
    conversation only (403 for anyone else; both audited); if Rasa stops answering or the
    conversation is reassigned, ``event: fallback`` says so and the stream ends.
    """
    def load(after_id: int) -> tuple[str, str, list[handoff_service.TurnView]] | None:
        with session_scope(settings.database_url) as session:
            h = repo.get(session, handoff_id)
            if h is None:
                return None
            return h.sender_id, h.status, handoff_service.turns(session, h.sender_id, after_id)

    def load_live(after_id: int) -> tuple[str, str, list[handoff_service.TurnView]] | None:
        with session_scope(settings.database_url) as session:
            h = repo.get(session, handoff_id)
            if h is None:
                return None
            if not handles(agent, h.agent_id):
                raise PermissionError
            sender, status = h.sender_id, h.status
        return sender, status, live_turns(rasa_api.tracker_events(settings, sender), after_id)

    def record(action: str, detail: str) -> None:
        with session_scope(settings.database_url) as session:
            audit(session, request, agent, action, f"handoff:{handoff_id}", detail)

    last_event = request.headers.get("Last-Event-ID", "")
    start_after = int(last_event) if last_event.isdigit() else after
    if live:
        with session_scope(settings.database_url) as session:
            h = repo.get(session, handoff_id)
            if h is None:
                raise HTTPException(status_code=404, detail="That conversation doesn't exist.")
            allowed = handles(agent, h.agent_id)
            audit(session, request, agent, "view_live" if allowed else "view_live_refused",
                  f"handoff:{handoff_id}", "live stream")
        if not allowed:
            raise HTTPException(status_code=403, detail="Only the agent handling this conversation (or a supervisor) "
                                                        "reads it live; claim it first.")
        return StreamingResponse(live_events(request, load_live, record, start_after), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    first = await asyncio.to_thread(load, after)
    if first is None:
        raise HTTPException(status_code=404, detail="That conversation doesn't exist.")

    async def events() -> AsyncIterator[str]:
        last, status = start_after, None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_MAX_S
        yield "retry: 1000\n\n"
        while loop.time() < deadline:
            if await request.is_disconnected():
                return
            got = await asyncio.to_thread(load, last)
            if got is None:
                return
            _, new_status, turns = got
            for t in turns:
                last = t.id
                yield f"id: {t.id}\nevent: turn\ndata: {_turn_json(t)}\n\n"
            if new_status != status:
                status = new_status
                yield f"event: status\ndata: {json.dumps({'status': status})}\n\n"
            await asyncio.sleep(STREAM_POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def live_events(request: Request, load: Any, record: Any, after: int) -> AsyncIterator[str]:
    """The live stream's events: new tracker turns every LIVE_POLL_S, the status, and a fallback at the end."""
    last, status = after, None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_MAX_S
    yield "retry: 1000\n\n"
    while loop.time() < deadline:
        if await request.is_disconnected():
            return
        try:
            got = await asyncio.to_thread(load, last)
        except PermissionError:
            await asyncio.to_thread(record, "view_live_ended", "reassigned: live stream stopped")
            yield f"event: fallback\ndata: {json.dumps({'detail': 'This conversation is no longer yours.'})}\n\n"
            return
        except ServiceError as exc:
            await asyncio.to_thread(record, "view_live_ended", f"chat server unavailable ({exc.code})")
            yield f"event: fallback\ndata: {json.dumps({'detail': LIVE_UNAVAILABLE})}\n\n"
            return
        if got is None:
            return
        _, new_status, turns = got
        for t in turns:
            last = t.id
            yield f"id: {t.id}\nevent: turn\ndata: {_turn_json(t)}\n\n"
        if new_status != status:
            status = new_status
            yield f"event: status\ndata: {json.dumps({'status': status})}\n\n"
        await asyncio.sleep(LIVE_POLL_S)


# ---------------------------------------------------------------- actions on a handoff
def _act(request: Request, session: Session, agent: AgentInfo, handoff_id: int, action: str, fn: Any,
         *args: Any, detail: str = "") -> None:
    try:
        fn(session, handoff_id, *args)
    except ServiceError as exc:
        raise HTTPException(status_code=409 if exc.code == "closed" else 400, detail=exc.message) from exc
    audit(session, request, agent, action, f"handoff:{handoff_id}", detail)


@router.post("/h/{handoff_id}/claim", name="console_claim")
def claim(handoff_id: int, request: Request, csrf: str = Form("", max_length=200),
          agent: AgentInfo = Depends(current_agent), session: Session = Depends(db_session)) -> Response:
    check_csrf(request, csrf)
    _act(request, session, agent, handoff_id, "claim", handoff_service.claim, agent.id)
    return back_to(request, handoff_id)


@router.post("/h/{handoff_id}/assign", name="console_assign")
def assign(handoff_id: int, request: Request, agent_id: int = Form(...), csrf: str = Form("", max_length=200),
           agent: AgentInfo = Depends(current_agent), session: Session = Depends(db_session)) -> Response:
    """Assign to another agent: supervisors only (an agent claims for themself)."""
    check_csrf(request, csrf)
    if not agent.is_supervisor and agent_id != agent.id:
        raise HTTPException(status_code=403, detail="Only supervisors assign conversations to others.")

    def assign_to(s: Session, hid: int) -> None:
        handoff_service.claim(s, hid, agent_id, assigned_by=agent.id)

    _act(request, session, agent, handoff_id, "assign", assign_to, detail=f"agent:{agent_id}")
    return back_to(request, handoff_id)


@router.post("/h/{handoff_id}/reply", name="console_reply")
def reply(handoff_id: int, request: Request, text: str = Form("", max_length=4000),
          csrf: str = Form("", max_length=200), agent: AgentInfo = Depends(current_agent),
          settings: Settings = Depends(web_settings)) -> Response:
    """Sends the reply through Rasa first; it is recorded only once the customer's channel took it."""
    check_csrf(request, csrf)
    try:
        text = handoff_service.clean_text(text)
        with session_scope(settings.database_url) as session:
            h = repo.get(session, handoff_id)
            if h is None or h.status not in repo.ACTIVE_STATUSES:
                raise HTTPException(status_code=409, detail="That conversation is closed.")
            sender = h.sender_id
        rasa_api.send_agent_reply(settings, sender, agent.display_name, text)
    except ServiceError as exc:
        raise HTTPException(status_code=502 if isinstance(exc, rasa_api.RasaUnavailable) else 400,
                            detail=exc.message) from exc
    with session_scope(settings.database_url) as session:
        _act(request, session, agent, handoff_id, "reply", handoff_service.record_reply, agent.id,
             text, detail=f"{len(text)} characters")
    return back_to(request, handoff_id)


@router.post("/h/{handoff_id}/note", name="console_note")
def note(handoff_id: int, request: Request, text: str = Form("", max_length=4000),
         csrf: str = Form("", max_length=200), agent: AgentInfo = Depends(current_agent),
         session: Session = Depends(db_session)) -> Response:
    check_csrf(request, csrf)
    _act(request, session, agent, handoff_id, "note", handoff_service.add_note, agent.id, text)
    return back_to(request, handoff_id)


@router.post("/h/{handoff_id}/labels", name="console_labels")
def labels(handoff_id: int, request: Request, labels: str = Form("", max_length=500),
           csrf: str = Form("", max_length=200), agent: AgentInfo = Depends(current_agent),
           session: Session = Depends(db_session)) -> Response:
    check_csrf(request, csrf)
    _act(request, session, agent, handoff_id, "labels", handoff_service.set_labels, labels, detail=labels[:200])
    return back_to(request, handoff_id)


def _close(request: Request, handoff_id: int, agent: AgentInfo, settings: Settings, *, resolved: bool) -> Response:
    """Closes the handoff, then resumes the bot through Rasa; a failed resume reopens it."""
    with session_scope(settings.database_url) as session:
        h = repo.get(session, handoff_id)
        previous = h.status if h else None
        def close(s: Session, hid: int) -> None:
            handoff_service.close(s, hid, agent.id, resolved=resolved)

        _act(request, session, agent, handoff_id, "resolve" if resolved else "hand_back", close)
        sender = h.sender_id
        language = handoff_service.conversation_language(handoff_service.turns(session, sender))
    template = CLOSING_MESSAGES[language][0 if resolved else 1]
    try:
        rasa_api.resume(settings, sender, template.format(name=agent.display_name), csat=resolved)
    except ServiceError as exc:
        with session_scope(settings.database_url) as session:
            handoff_service.reopen(session, handoff_id, previous or "assigned")
        raise HTTPException(status_code=502, detail=exc.message) from exc
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": str(request.url_for("console_inbox"))})
    return RedirectResponse(str(request.url_for("console_inbox")), status_code=303)


@router.post("/h/{handoff_id}/resolve", name="console_resolve")
def resolve(handoff_id: int, request: Request, csrf: str = Form("", max_length=200),
            agent: AgentInfo = Depends(current_agent), settings: Settings = Depends(web_settings)) -> Response:
    check_csrf(request, csrf)
    return _close(request, handoff_id, agent, settings, resolved=True)


@router.post("/h/{handoff_id}/handback", name="console_handback")
def hand_back(handoff_id: int, request: Request, csrf: str = Form("", max_length=200),
              agent: AgentInfo = Depends(current_agent), settings: Settings = Depends(web_settings)) -> Response:
    check_csrf(request, csrf)
    return _close(request, handoff_id, agent, settings, resolved=False)


# ---------------------------------------------------------------- supervisors
@router.get("/team", response_class=HTMLResponse, name="console_team")
def team(request: Request, agent: AgentInfo = Depends(current_supervisor),
         session: Session = Depends(db_session)) -> HTMLResponse:
    """Supervisors: the agents, who is online, and the audit log of agent actions."""
    names = {a.id: a.display_name for a in repo.agents(session)}
    return render(request, "team.html", agent, agents=repo.agents(session), audit=repo.audit_entries(session),
                  names=names)
