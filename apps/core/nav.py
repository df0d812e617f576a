"""Console navigation. Every area has its section from the start; apps add their pages with
`register_nav()` in AppConfig.ready(), and a section with no pages yet is shown disabled."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

SECTIONS = [
    ("overview", "Overview"),
    ("compute", "Compute"),
    ("network", "Network"),
    ("storage", "Storage"),
    ("billing", "Billing"),
    ("appstore", "App store"),
    ("monitoring", "Monitoring"),
    ("iam", "Access"),
    ("audit", "Audit"),
]


@dataclass(frozen=True)
class NavEntry:
    section: str
    label: str
    url_name: str
    area: str | None  # hidden when the actor cannot read this area


_entries: list[NavEntry] = []


def register_nav(section: str, label: str, url_name: str, *, area: str | None = None) -> None:
    entry = NavEntry(section, label, url_name, area)
    if entry not in _entries:
        _entries.append(entry)


def navigation(request, actor) -> list[dict]:
    path = request.path
    sections = []
    for key, title in SECTIONS:
        items = []
        for entry in _entries:
            if entry.section != key or (entry.area and not actor.allows(entry.area, "view")):
                continue
            url = reverse(entry.url_name)
            active = path == url if url == "/" else path.startswith(url)
            items.append({"label": entry.label, "url": url, "active": active})
        sections.append({"key": key, "title": title, "items": items})
    return sections
