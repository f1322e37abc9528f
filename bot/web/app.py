"""The web app (``python -m bot.web``, port 8000): ``create_app()`` wires the middleware and one router per feature.

- shop: the demo shop (catalogue, product pages, the demo customers' sign-in), every page with the chat widget;
- widget: the rasa-webchat bundle and ``GET /api/chat-token``, the signed-in customer's 15-minute chat token;
- images: product pictures;
- console: the agent console under ``/console`` (log-in, inbox, live conversations, replies through Rasa's API);
- dashboard: the supervisors' dashboard under ``/console/dashboard`` (charts and CSV exports).

Why one app: the shop's session cookie, CSRF and CSP (bot/web/security.py) and the error pages
(JSON for API and htmx callers, a page for people, never a stack trace) are shared by all five.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from bot.settings import Settings, get_settings
from bot.web import console, dashboard, images, shop, widget
from bot.web.auth import LoginRequired
from bot.web.deps import TEMPLATES
from bot.web.security import content_security_policy

STATIC_DIR = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "concierge_session"
SESSION_MAX_AGE_S = 7 * 24 * 3600


def _wants_json(request: Request) -> bool:
    """API callers and htmx (the console's actions: console.js shows ``detail``, htmx swaps nothing)."""
    return (request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")
            or bool(request.headers.get("HX-Request")))


def _error_page(request: Request, status: int, message: str) -> Response:
    """A JSON error for API callers, a shop-styled page for people (never a stack trace)."""
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    return TEMPLATES.TemplateResponse(
        request, "shop/error.html", {"status": status, "message": message}, status_code=status
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The web app for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    app = FastAPI(title="Concierge", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    csp = content_security_policy(settings)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # noqa: ANN001, ANN202 - Starlette's signature
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="lax",
        https_only=settings.cookie_secure,
    )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.detail, str) and exc.detail not in ("Not Found", "Method Not Allowed"):
            message = exc.detail
        else:
            message = {404: "We couldn't find that page.", 405: "That isn't allowed here."}.get(
                exc.status_code, "Something went wrong."
            )
        return _error_page(request, exc.status_code, message)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        """Console pages send people to the log-in form; streams and htmx calls get a plain 401."""
        if request.method == "GET" and "text/html" in request.headers.get("accept", "") and not request.headers.get(
            "HX-Request"
        ):
            return RedirectResponse(str(request.url_for("console_login")), status_code=303)
        return JSONResponse({"detail": "Log in to the console first."}, status_code=401)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        status = 422 if _wants_json(request) else 400
        return _error_page(request, status, "That request doesn't look right.")

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        return _error_page(request, 500, "Something went wrong on our side. Please try again.")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(shop.router)
    app.include_router(widget.router)
    app.include_router(images.router)
    app.include_router(console.router)
    app.include_router(dashboard.router)

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


__all__ = ["create_app"]
