"""HTML building blocks for `cnnlab report`: one page, inline CSS, images as data URIs, every text escaped.

Nothing here refers to another file or host: the page must open from an e-mail attachment or an air-gapped
machine, and a report of someone else's run must not be able to inject markup (class names come from data files).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any

CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #dde2ea; --accent: #2a5db0; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: var(--bg); }
header { background: #1d2330; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c9d1e0; }
nav { padding: 8px 28px; background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 14px 20px;
          margin: 18px 0; }
h2 { margin: 0 0 10px; font-size: 18px; }
h3 { margin: 14px 0 6px; font-size: 15px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: var(--bg); border: 1px solid var(--line); padding: 10px; overflow: auto; font-size: 12px; }
img { max-width: 100%; height: auto; image-rendering: pixelated; }
img.plot { image-rendering: auto; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; }
figcaption { color: var(--muted); font-size: 12px; max-width: 360px; }
.note { color: var(--muted); font-style: italic; }
.missing { color: var(--ink); font-style: normal; background: #fff4e5; border-left: 4px solid #e67e22;
           padding: 6px 12px; }
details summary { cursor: pointer; color: var(--accent); }
.metrics span { display: inline-block; margin-right: 22px; }
.metrics b { font-size: 18px; }
.finding { border-left: 4px solid var(--muted); padding: 6px 12px; margin: 10px 0; background: var(--bg); }
.finding.critical, .finding.high { border-color: #c0392b; }
.finding.warning, .finding.medium { border-color: #e67e22; }
.finding.info, .finding.low { border-color: #2a5db0; }
.badge { font-size: 11px; text-transform: uppercase; padding: 1px 6px; border-radius: 3px; background: #dde2ea; }
.columns { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
"""


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image(png: bytes, alt: str, css_class: str = "") -> str:
    class_attr = f' class="{escape(css_class)}"' if css_class else ""
    return f'<img src="{data_uri(png)}" alt="{escape(alt)}"{class_attr}>'


def figure(png: bytes, caption: str, css_class: str = "") -> str:
    return f"<figure>{image(png, caption, css_class)}<figcaption>{escape(caption)}</figcaption></figure>"


def gallery(items: Iterable[str]) -> str:
    return f'<div class="gallery">{"".join(items)}</div>'


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def missing(reason: str) -> str:
    """The body of a section that could not be made: why, where the section would be."""
    return f'<p class="note missing"><b>Not made:</b> {escape(reason)}</p>'


def missing_notice(sections: Sequence[tuple[str, str]]) -> str:
    """A line above the sections listing those (anchor, title) that could not be made, linked to their notes."""
    if not sections:
        return ""
    links = ", ".join(f'<a href="#{escape(anchor)}">{escape(title)}</a>' for anchor, title in sections)
    return f'<p class="note missing"><b>Not made:</b> {links} (each section says why).</p>'


def text(item: Any) -> str:
    """A value as a reader wants it: yes/no, — for nothing, thousands separated, floats rounded to what matters.

    Floats get 4 significant digits, not 4 decimals: a prescribed weight decay of 5e-05 must not print as 0.0000.
    """
    if item is None:
        return "—"
    if isinstance(item, bool):
        return "yes" if item else "no"
    if isinstance(item, int):
        return f"{item:,}"
    if isinstance(item, float):
        return f"{item:,.0f}" if abs(item) >= 1e4 else f"{item:.4g}"
    return str(item)


def seconds(value: float | None) -> str:
    """A duration in seconds with one decimal and its unit (`428.9 s`), as `cnnlab train` prints it."""
    return text(None) if value is None else f"{value:,.1f} s"


def paragraph(text: str) -> str:
    return f"<p>{escape(text)}</p>"


def heading(text: str, level: int = 3) -> str:
    return f"<h{level}>{escape(text)}</h{level}>"


def preformatted(text: str) -> str:
    return f"<pre>{escape(text)}</pre>"


def _cell(value: Any, tag: str) -> str:
    # Table floats are metrics in [0, 1]: 4 decimals, aligned.
    if isinstance(value, float):
        return f'<{tag} class="num">{value:.4f}</{tag}>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<{tag} class="num">{value:,}</{tag}>'
    return f"<{tag}>{escape(text(value))}</{tag}>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v, "td") for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th>{_cell(v, 'td')}</tr>" for k, v in pairs)
    return f"<table><tbody>{rows}</tbody></table>"


def value(item: Any) -> str:
    """Any finding or config field (text, number, list, mapping) as escaped HTML: mappings as tables, lists as
    bullets, single values as `text` writes them."""
    if hasattr(item, "__dataclass_fields__"):
        item = {name: getattr(item, name) for name in item.__dataclass_fields__}
    if isinstance(item, (dict, list, tuple)) and not item:
        return text(None)
    if isinstance(item, dict):
        rows = "".join(f"<tr><th>{escape(k)}</th>{_value_cell(v)}</tr>" for k, v in item.items())
        return f"<table><tbody>{rows}</tbody></table>"
    if isinstance(item, (list, tuple)):
        return "<ul>" + "".join(f"<li>{value(v)}</li>" for v in item) + "</ul>"
    return escape(text(item))


def _value_cell(item: Any) -> str:
    numeric = isinstance(item, (int, float)) and not isinstance(item, bool)
    return f'<td class="num">{value(item)}</td>' if numeric else f"<td>{value(item)}</td>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>{body}</section>'


def page(
    title: str, subtitle: str, sections: Sequence[tuple[str, str, str]], not_made: Sequence[tuple[str, str]] = ()
) -> str:
    """The whole document; `sections` are (anchor, title, body HTML), linked from the navigation bar; `not_made`
    (anchor, title) are listed above them."""
    nav = "".join(f'<a href="#{escape(anchor)}">{escape(name)}</a>' for anchor, name, _ in sections)
    body = missing_notice(not_made) + "".join(section(anchor, name, content) for anchor, name, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request, not even to the file system
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )
