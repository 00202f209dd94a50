"""sitemap.xml listing every HTML page, with hreflang alternates between language versions."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from newsletter.archive.plan import PagePlan

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
XHTML_NS = "http://www.w3.org/1999/xhtml"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_sitemap(page: PagePlan) -> bytes:
    """Sitemap bytes for the planned list of URLs."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<urlset xmlns="{SITEMAP_NS}" xmlns:xhtml="{XHTML_NS}">',
    ]
    for url in page.context["urls"]:
        lines.append(f"  <url><loc>{_escape(url['loc'])}</loc>")
        if url["lastmod"]:
            lines.append(f"    <lastmod>{url['lastmod']}</lastmod>")
        for alt in url["alternates"]:
            lines.append(
                f'    <xhtml:link rel="alternate" hreflang={quoteattr(alt["lang"])} '
                f'href={quoteattr(alt["url"])}/>'
            )
        lines.append("  </url>")
    lines.append("</urlset>")
    return ("\n".join(lines) + "\n").encode("utf-8")
