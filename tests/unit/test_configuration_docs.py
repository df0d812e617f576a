"""Every environment variable the settings read is documented in .env.example and the docs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_variable_is_documented():
    settings_text = (ROOT / "cloudportal/settings.py").read_text()
    names = set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z_]+)"', settings_text))
    names |= set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', settings_text))
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"} <= names
    example = (ROOT / ".env.example").read_text()
    docs = (ROOT / "docs/configuration.md").read_text()
    assert sorted(n for n in names if n not in example) == []
    assert sorted(n for n in names if f"`{n}`" not in docs) == []
