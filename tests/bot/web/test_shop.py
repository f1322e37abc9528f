"""bot/web/shop.py: catalogue pages, product pages, the demo log-in and log-out."""

from __future__ import annotations

import html
import re
from decimal import Decimal

from markupsafe import escape
from sqlalchemy import select

from bot.db import models as m
from bot.db.session import session_scope
from bot.services import catalog
from bot.services.types import format_money
from tests.actions.conftest import EMAILS
from tests.bot.web.conftest import csrf_of, login

ALICE = EMAILS[1]


def test_index_lists_the_catalogue_with_best_sellers(client, session):
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    page = catalog.list_products(session, None, 1, 24)
    for p in page.items + catalog.best_sellers(session, None, 10):
        assert html.escape(p.name) in resp.text
        assert f'href="/products/{p.id}"' in resp.text
        assert f'src="/images/products/{p.id}.svg"' in resp.text
    assert f"{page.total} products" in resp.text
    assert format_money(page.items[0].price) in resp.text
    assert "Sign in" in resp.text and "Signed in as" not in resp.text


def test_category_and_pages(client, session):
    resp = client.get("/", params={"category": "coffee"})
    coffee = catalog.list_products(session, "coffee", 1, 100)
    assert resp.status_code == 200 and coffee.items
    shown = set(map(int, re.findall(r'href="/products/(\d+)"', resp.text)))
    assert shown == {p.id for p in coffee.items[:24]}
    assert 'class="active">Coffee<' in resp.text
    last = catalog.list_products(session, None, 1, 24).pages
    assert f"Page 2 of {last}" in client.get("/", params={"page": 2}).text
    assert "No products here" in client.get("/", params={"page": last + 1}).text
    assert "No products here" in client.get("/", params={"category": "unicorns"}).text


def test_bad_query_parameters_get_a_page_not_a_trace(client):
    for params in ({"page": "abc"}, {"page": "0"}, {"page": "-3"}, {"category": "x" * 500}):
        resp = client.get("/", params=params)
        assert resp.status_code == 400, params
        assert "look right" in resp.text and "Traceback" not in resp.text


def test_product_page(client, session):
    product = catalog.best_sellers(session, "cameras", 1)[0]
    resp = client.get(f"/products/{product.id}")
    assert resp.status_code == 200
    text = resp.text
    assert f"<h1>{html.escape(product.name)}</h1>" in text
    assert format_money(product.price) in text
    assert html.escape(product.description) in text
    assert product.sku in text and "In stock" in text


def test_unknown_products_are_404_pages(client):
    for path in ("/products/999999", "/products/0", "/images/products/999999.svg", "/no/such/page"):
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert "Back to the shop" in resp.text
    assert client.get("/products/abc").status_code == 400
    api = client.get("/api/nothing-here")
    assert api.status_code == 404 and api.json() == {"detail": "We couldn't find that page."}


def test_customer_text_is_escaped(make_client, fresh_db_url):
    evil = '<img src=x onerror=alert(1)> "Deluxe" <script>alert(2)</script>'
    with session_scope(fresh_db_url) as s:
        product = m.Product(sku="EVIL-1", name=evil, category="toys", description=evil, price=Decimal("9.99"), stock=3)
        s.add(product)
        s.flush()
        pid = product.id
    client = make_client(fresh_db_url)
    for path in (f"/products/{pid}", "/?category=toys&page=99", f"/?category={evil}"):
        text = client.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
    page = client.get(f"/products/{pid}").text
    assert str(escape(evil)) in page
    svg = client.get(f"/images/products/{pid}.svg").text
    assert "<script" not in svg and "onerror" not in svg.replace("onerror=alert(1)&gt;", "")


def test_security_headers(client):
    resp = client.get("/")
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp
    assert "connect-src 'self' http://chat.example.test:5005 ws://chat.example.test:5005" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"


def test_login_and_logout(client):
    resp = login(client, ALICE, "/products/3")
    assert resp.status_code == 303 and resp.headers["location"] == "/products/3"
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("concierge_session=")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    page = client.get("/").text
    assert "Signed in as <strong>Alice Martin</strong>" in page
    assert 'data-logged-in="1"' in page
    out = client.post("/logout", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/"
    page = client.get("/").text
    assert "Signed in as" not in page and 'data-logged-in="0"' in page


def test_login_needs_the_csrf_token(client):
    client.get("/login")
    resp = client.post("/login", data={"email": ALICE, "csrf": "forged"}, follow_redirects=False)
    assert resp.status_code == 403
    assert client.post("/login", data={"email": ALICE}, follow_redirects=False).status_code == 403
    assert "Signed in as" not in client.get("/").text


def test_logout_needs_the_csrf_token(client):
    login(client, ALICE)
    assert client.post("/logout", data={"csrf": "forged"}, follow_redirects=False).status_code == 403
    assert "Signed in as" in client.get("/").text


def test_only_demo_customers_can_log_in(client, session):
    other = session.scalar(select(m.Customer).where(m.Customer.id > 4).limit(1))
    for email in (other.email, "nobody@example.com", "", "x" * 300, "<script>@x"):
        resp = login(client, email)
        assert resp.status_code == 400, email
        assert "one of the demo customers" in resp.text
        assert "<script>@x" not in resp.text
    assert "Signed in as" not in client.get("/").text


def test_login_page_lists_the_demo_customers(client):
    page = client.get("/login").text
    for email in EMAILS.values():
        assert email in page
    assert "Alice Martin" in page and "David Okafor" in page


def test_no_open_redirect_after_login(client):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        resp = login(client, ALICE, target)
        assert resp.headers["location"] == "/", target


def test_the_language_switch_sets_the_page_and_the_widget_language(client):
    page = client.get("/products/3").text
    assert '<html lang="en">' in page and 'data-lang="en"' in page and 'data-testid="lang-zh"' in page
    chat = re.search(r'data-chat-id="([^"]+)"', page).group(1)
    resp = client.get("/lang/zh", params={"next": "/products/3"}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/products/3"
    assert "shop_lang=zh" in resp.headers["set-cookie"] and "samesite=lax" in resp.headers["set-cookie"].lower()
    page = client.get("/products/3").text
    assert '<html lang="zh-CN">' in page and 'data-lang="zh"' in page and 'data-testid="lang-en"' in page
    assert f'data-chat-id="{chat}"' in page  # the same conversation goes on in the other language
    assert client.get("/lang/fr", follow_redirects=False).status_code == 404
    assert client.get("/lang/en", params={"next": "//evil.example"}, follow_redirects=False).headers["location"] == "/"


def test_the_chinese_switch_turns_the_shop_itself_chinese(client, session):
    """The page, not only the widget: navigation, hero, sections, categories, prices, stock, sign-in."""
    english = client.get("/").text
    assert "Best sellers" in english and ">Sign in</a>" in english and "美元" not in english
    client.get("/lang/zh")
    page = client.get("/").text
    for words in ("热销商品", "全部商品", ">登录</a>", ">全部</a>", "家居、办公、玩乐", "智能家居", "件商品"):
        assert words in page, words
    assert "Best sellers" not in page and "Everything for home" not in page
    prices = re.findall(r'class="card-price">([^<]+)<', page)
    assert prices and all(p.endswith("美元") and "$" not in p for p in prices)
    product = client.get("/products/1").text
    assert "加入购物车" in product and ("有货" in product or "暂时缺货" in product) and "货号" in product
    assert "登录" in client.get("/login").text
    client.get("/lang/en")
    assert "Best sellers" in client.get("/").text  # and back


def test_the_chat_identity_changes_at_login_and_logout(client):
    def chat_id() -> str:
        return re.search(r'data-chat-id="([^"]+)"', client.get("/").text).group(1)

    anonymous = chat_id()
    assert chat_id() == anonymous  # a reload keeps the conversation
    login(client, ALICE)
    alice = chat_id()
    assert alice != anonymous and chat_id() == alice
    page = client.get("/").text
    client.post("/logout", data={"csrf": csrf_of(page)})
    assert chat_id() not in (alice, anonymous)


def test_a_tampered_session_cookie_is_anonymous(client):
    login(client, ALICE)
    value = client.cookies.get("concierge_session")
    client.cookies.clear()
    client.cookies.set("concierge_session", value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert "Signed in as" not in client.get("/").text
    assert client.get("/api/chat-token").status_code == 401
