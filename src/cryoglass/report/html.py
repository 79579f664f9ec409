"""Self-contained HTML reports: headings, text, number tables and PNG figures.

Reports are plain HTML with relative links to PNG files written beside them, so a report
folder can be zipped, mailed and opened anywhere.  Files are written atomically.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from cryoglass.io._atomic import write_text_atomic

__all__ = ["Section", "write_html_report"]


@dataclass(frozen=True)
class Section:
    """One report section: a heading, paragraphs, a key-value table and figures."""

    title: str
    paragraphs: tuple[str, ...] = ()
    table: tuple[tuple[str, str], ...] = ()
    figures: tuple[tuple[str, str], ...] = field(default=())  # (file name, caption)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #446}h2{color:#335;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td{border:1px solid #ccc;padding:.2em .6em}
td:first-child{color:#555}figure{display:inline-block;margin:.5em 1em .5em 0;max-width:100%}
img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.9em;color:#555;max-width:60em}
code{background:#f4f4f8;padding:0 .2em}
"""


def write_html_report(path: Path, *, title: str, intro: str, sections: list[Section]) -> None:
    """Write a report page; figure names are paths relative to the report's folder."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{intro}</p>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.extend(f"<p>{p}</p>" for p in section.paragraphs)
        if section.table:
            rows = "".join(
                f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                for k, v in section.table
            )
            parts.append(f"<table>{rows}</table>")
        for name, caption in section.figures:
            parts.append(
                f"<figure><img src='{html.escape(name)}' alt='{html.escape(caption)}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    write_text_atomic(Path(path), "\n".join(parts))
