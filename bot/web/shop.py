"""The demo shop: product list from the CRM catalogue, product pages, a demo log-in and log-out.

The log-in is a demo: a visitor picks one of the documented demo customers (no password). A real
shop keeps its own sign-in and only has to provide the token endpoint (see README, "Website widget").
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from bot.seed import DEMO_CUSTOMERS
from bot.services import catalog, identity
from bot.services.types import CustomerInfo, format_money
from bot.settings import Settings
from bot.web.deps import TEMPLATES, db_session, web_settings
from bot.web.security import check_csrf, csrf_token, session_customer_id, start_identity
from bot.web.widget import widget_context

router = APIRouter()
PER_PAGE = 24
#: the page languages the shop offers (the widget and the bot follow the page); the first is the default
LANGUAGES = ("en", "zh")
LANG_COOKIE = "shop_lang"


SHOP_ZH = Path(__file__).resolve().parent.parent / "content" / "shop.zh.yml"


@functools.lru_cache(maxsize=1)
def _chinese_words() -> dict[str, str]:
    with open(SHOP_ZH, encoding="utf-8") as fh:
        return {str(k): str(v) for k, v in (yaml.safe_load(fh) or {}).items()}


def shop_text(text: str, lang: Any = "en") -> str:
    """The shop's own words in the page's language (bot/content/shop.zh.yml); English when missing."""
    return _chinese_words().get(text, text) if lang == "zh" else text


TEMPLATES.env.globals["t"] = shop_text
TEMPLATES.env.filters["money"] = format_money  # {{ price | money(lang) }}


def page_language(request: Request) -> str:
    """The visitor's choice of the shop's 中文 / English switch (a cookie), else English."""
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LANGUAGES else LANGUAGES[0]


def current_customer(request: Request, session: Session) -> CustomerInfo | None:
    """The logged-in customer, or None (anonymous, or the account no longer exists)."""
    return identity.get_customer(session, session_customer_id(request))


def page_context(request: Request, session: Session, settings: Settings, **extra: Any) -> dict[str, Any]:
    """What every shop page renders: the visitor, the categories, the CSRF token, the widget."""
    customer = current_customer(request, session)
    lang = page_language(request)
    return {
        "customer": customer,
        "categories": catalog.categories(session),
        "csrf": csrf_token(request),
        "lang": lang,
        "widget": widget_context(request, settings, customer is not None, lang),
        **extra,
    }


def safe_next(target: str | None) -> str:
    """Only local paths are followed after logging in or out (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 500:
        return "/"
    return target


@router.get("/", response_class=HTMLResponse, name="shop_index")
def index(
    request: Request,
    category: str | None = Query(None, max_length=100),
    page: int = Query(1, ge=1, le=10_000),
    session: Session = Depends(db_session),
    settings: Settings = Depends(web_settings),
) -> HTMLResponse:
    listing = catalog.list_products(session, category, page, PER_PAGE)
    best = catalog.best_sellers(session, None, 10) if not category and page == 1 else []
    ctx = page_context(request, session, settings, listing=listing, category=category, best_sellers=best)
    return TEMPLATES.TemplateResponse(request, "shop/index.html", ctx)


@router.get("/products/{product_id}", response_class=HTMLResponse, name="product_page")
def product_page(
    request: Request,
    product_id: int,
    session: Session = Depends(db_session),
    settings: Settings = Depends(web_settings),
) -> HTMLResponse:
    product = catalog.get_product(session, product_id)
    if product is None:
        raise HTTPException(status_code=404, detail="We couldn't find that product.")
    related = [p for p in catalog.best_sellers(session, product.category, 5) if p.id != product.id][:4]
    ctx = page_context(request, session, settings, product=product, related=related)
    return TEMPLATES.TemplateResponse(request, "shop/product.html", ctx)


@router.get("/login", response_class=HTMLResponse, name="login_page")
def login_page(
    request: Request,
    next_url: str | None = Query(None, alias="next", max_length=500),
    session: Session = Depends(db_session),
    settings: Settings = Depends(web_settings),
) -> HTMLResponse:
    demo = [c for c in (identity.get_customer(session, d.id) for d in DEMO_CUSTOMERS) if c is not None]
    ctx = page_context(request, session, settings, demo_customers=demo, next=safe_next(next_url), error=None)
    return TEMPLATES.TemplateResponse(request, "shop/login.html", ctx)


@router.post("/login", name="login", response_model=None)
def login(
    request: Request,
    csrf: str = Form("", max_length=200),
    email: str = Form("", max_length=320),
    next_url: str = Form("/", alias="next", max_length=500),
    session: Session = Depends(db_session),
    settings: Settings = Depends(web_settings),
) -> Response:
    """Demo log-in as one of the demo customers (chosen by email)."""
    check_csrf(request, csrf)
    wanted = email.strip().lower()
    demo_id = next((d.id for d in DEMO_CUSTOMERS if d.email.lower() == wanted), None)
    customer = identity.get_customer(session, demo_id)
    if customer is None or customer.email.lower() != wanted:
        demo = [c for c in (identity.get_customer(session, d.id) for d in DEMO_CUSTOMERS) if c is not None]
        ctx = page_context(
            request, session, settings, demo_customers=demo, next=safe_next(next_url),
            error="That isn't one of the demo customers. Pick one below.",
        )  # fmt: skip
        return TEMPLATES.TemplateResponse(request, "shop/login.html", ctx, status_code=400)
    start_identity(request, customer.id)
    return RedirectResponse(safe_next(next_url), status_code=303)


@router.get("/lang/{code}", name="set_language")
def set_language(code: str, next_url: str | None = Query(None, alias="next", max_length=500)) -> RedirectResponse:
    """The 中文 / English switch: remembers the page language for a year and goes back to the page."""
    if code not in LANGUAGES:
        raise HTTPException(status_code=404, detail="Unknown language.")
    response = RedirectResponse(safe_next(next_url), status_code=303)
    response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, samesite="lax", httponly=True)
    return response


@router.post("/logout", name="logout")
def logout(request: Request, csrf: str = Form("", max_length=200)) -> RedirectResponse:
    check_csrf(request, csrf)
    start_identity(request, None)
    return RedirectResponse("/", status_code=303)
