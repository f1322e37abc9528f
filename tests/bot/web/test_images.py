"""bot/web/images.py: product pictures drawn as SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

from bot.services import catalog
from bot.services.types import ProductInfo
from bot.web.images import CATEGORY_HUES, product_svg


def test_every_category_has_a_picture(session):
    assert set(catalog.categories(session)) <= set(CATEGORY_HUES)


def test_product_image_is_valid_svg(client, session):
    product = catalog.best_sellers(session, "coffee", 1)[0]
    resp = client.get(f"/images/products/{product.id}.svg")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/svg+xml"
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    root = ET.fromstring(resp.text)  # noqa: S314 - our own SVG
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("aria-label") == product.name
    assert resp.text == client.get(f"/images/products/{product.id}.svg").text  # deterministic


def test_text_in_pictures_is_escaped():
    evil = ProductInfo(1, "S", '<b onload="x">&"Brand', "toys", Decimal(1), 1, "")
    svg = product_svg(evil)
    root = ET.fromstring(svg)  # noqa: S314 - still well-formed
    assert root.get("aria-label") == evil.name
    assert "<b " not in svg
