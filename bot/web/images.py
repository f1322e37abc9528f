"""Product pictures drawn by the app: one SVG per product (a category glyph on a tinted card).

Why: the shop and the chat widget's product cards need images, and nothing may be fetched from
outside; the drawing depends only on the product's id, category and name.
"""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, HTTPException, Response
from sqlalchemy.orm import Session

from bot.services import catalog
from bot.services.types import ProductInfo
from bot.web.deps import db_session

router = APIRouter()

# hue of each category's card and a glyph drawn in a 200x200 box centred on (0, 0)
CATEGORY_HUES = {
    "cameras": 210, "audio": 265, "computers": 195, "phones": 230, "smart home": 160, "kitchen": 15,
    "coffee": 28, "office": 45, "outdoors": 120, "books": 340, "toys": 300, "pets": 85,
}  # fmt: skip
GLYPHS = {
    'cameras': (
        '<rect x="-70" y="-40" width="140" height="95" rx="14"/>',
        '<rect x="-30" y="-58" width="50" height="24" rx="6"/>',
        '<circle r="32" cy="8" fill="#fff"/>',
        '<circle r="20" cy="8"/>',
        '<circle r="6" cx="48" cy="-24" fill="#fff"/>',
    ),
    'audio': (
        '<path d="M-60 20 v-20 a60 60 0 0 1 120 0 v20" fill="none" stroke-width="14" stroke="currentColor"/>',
        '<rect x="-78" y="10" width="34" height="58" rx="12"/>',
        '<rect x="44" y="10" width="34" height="58" rx="12"/>',
    ),
    'computers': (
        '<rect x="-70" y="-55" width="140" height="90" rx="8"/>',
        '<rect x="-58" y="-44" width="116" height="68" rx="3" fill="#fff"/>',
        '<path d="M-88 42 h176 l-12 18 h-152 z"/>',
    ),
    'phones': (
        '<rect x="-38" y="-72" width="76" height="144" rx="14"/>',
        '<rect x="-30" y="-58" width="60" height="108" rx="4" fill="#fff"/>',
        '<circle r="5" cy="61" fill="#fff"/>',
    ),
    'smart home': (
        '<path d="M-70 -5 L0 -68 L70 -5 v70 h-140 z"/>',
        '<rect x="-16" y="22" width="32" height="43" fill="#fff"/>',
        '<path d="M-22 -18 a30 30 0 0 1 44 0" fill="none" stroke="#fff" stroke-width="6"/>',
    ),
    'kitchen': (
        '<rect x="-60" y="-25" width="120" height="80" rx="12"/>',
        '<rect x="-74" y="-35" width="148" height="14" rx="7"/>',
        '<rect x="-12" y="-52" width="24" height="16" rx="5"/>',
    ),
    'coffee': (
        '<path d="M-55 -20 h90 v45 a45 45 0 0 1 -90 0 z"/>',
        '<path d="M35 -8 a20 20 0 0 1 0 40" fill="none" stroke="currentColor" stroke-width="10"/>',
        '<path d="M-30 -38 q-10 -12 0 -24 M-10 -38 q-10 -12 0 -24 M10 -38 q-10 -12 0 -24" fill="none" '
        'stroke="currentColor" stroke-width="6"/>',
    ),
    'office': (
        '<rect x="-55" y="-70" width="110" height="140" rx="8"/>',
        '<path d="M-35 -40 h70 M-35 -15 h70 M-35 10 h70 M-35 35 h45" stroke="#fff" stroke-width="8"/>',
    ),
    'outdoors': (
        '<path d="M-85 60 L-25 -40 L15 20 L40 -15 L90 60 z"/>',
        '<circle cx="50" cy="-50" r="16"/>',
    ),
    'books': (
        '<rect x="-70" y="25" width="140" height="28" rx="4"/>',
        '<rect x="-58" y="-8" width="120" height="28" rx="4"/>',
        '<rect x="-64" y="-41" width="128" height="28" rx="4"/>',
        '<path d="M-40 -27 h70" stroke="#fff" stroke-width="5"/>',
    ),
    'toys': (
        '<rect x="-75" y="0" width="60" height="60" rx="8"/>',
        '<circle cx="35" cy="20" r="40"/>',
        '<path d="M-5 20 h80" stroke="#fff" stroke-width="8"/>',
        '<path d="M-60 -10 L-45 -50 L-30 -10 z"/>',
    ),
    'pets': (
        '<ellipse cy="30" rx="38" ry="32"/>',
        '<ellipse cx="-48" cy="-18" rx="15" ry="20"/>',
        '<ellipse cx="48" cy="-18" rx="15" ry="20"/>',
        '<ellipse cx="-18" cy="-50" rx="14" ry="19"/>',
        '<ellipse cx="18" cy="-50" rx="14" ry="19"/>',
    ),
}
BOX = (
    '<path d="M-60 -30 L0 -60 L60 -30 v70 L0 70 L-60 40 z"/>',
    '<path d="M-60 -30 L0 0 L60 -30 M0 0 v70" fill="none" stroke="#fff" stroke-width="6"/>',
)


def product_svg(product: ProductInfo) -> str:
    """A 400x300 SVG picture of the product (deterministic)."""
    hue = CATEGORY_HUES.get(product.category, int(hashlib.blake2s(product.category.encode()).hexdigest()[:4], 16) % 360)
    shade = int(hashlib.blake2s(str(product.id).encode()).hexdigest()[:2], 16) % 16 - 8  # a little variety per product
    light, dark = f"hsl({hue}, 70%, {90 + shade // 4}%)", f"hsl({hue}, 55%, {38 + shade}%)"
    brand = escape(product.name.split(" ")[0][:20].upper())
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300" width="400" height="300" role="img" '
        f'aria-label="{escape(product.name[:100], {chr(34): "&quot;"})}">'
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="{light}"/>'
        f'<stop offset="1" stop-color="hsl({hue}, 60%, 80%)"/></linearGradient></defs>'
        '<rect width="400" height="300" fill="url(#g)"/>'
        f'<g transform="translate(200 138) scale(0.95)" fill="{dark}" color="{dark}">'
        f"{''.join(GLYPHS.get(product.category, BOX))}</g>"
        f'<text x="200" y="272" text-anchor="middle" font-family="Helvetica, Arial, sans-serif" font-size="22" '
        f'font-weight="700" letter-spacing="3" fill="{dark}">{brand}</text></svg>'
    )


@router.get("/images/products/{product_id}.svg", name="product_image")
def product_image(product_id: int, session: Session = Depends(db_session)) -> Response:
    """The product's picture; 404 for an unknown product."""
    product = catalog.get_product(session, product_id)
    if product is None:
        raise HTTPException(status_code=404, detail="No such product")
    return Response(
        product_svg(product),
        media_type="image/svg+xml",
        headers={
            "Cache-Control": "public, max-age=86400",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )
