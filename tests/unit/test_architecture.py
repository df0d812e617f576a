"""Rules that matter, enforced: scoping lives in one place."""

import inspect

from django.urls import URLPattern, URLResolver, get_resolver

from apps.core.api.views import TenantScopedViewSet
from apps.core.models import ScopedQuerySet, TenantOwnedQuerySet
from apps.core.registry import tenant_owned_models


def test_every_tenant_owned_model_uses_the_scoped_queryset():
    for model in tenant_owned_models():
        assert isinstance(model.objects.all(), TenantOwnedQuerySet), model
        assert model.public_id_prefix, f"{model.__name__} needs a public_id_prefix"
        assert model.area or getattr(model, "area_field", None), f"{model.__name__} needs an area"


def test_public_id_prefixes_are_unique():
    prefixes = [m.public_id_prefix for m in tenant_owned_models()]
    assert len(prefixes) == len(set(prefixes))


def _viewsets(patterns):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _viewsets(p.url_patterns)
        elif isinstance(p, URLPattern) and hasattr(p.callback, "cls"):
            yield p.callback.cls


def test_every_viewset_over_a_scoped_model_is_a_tenant_scoped_viewset():
    scoped_models = {m for m in _all_models() if isinstance(m.objects.all(), ScopedQuerySet)}
    for cls in set(_viewsets(get_resolver().url_patterns)):
        model = getattr(cls, "model", None) or getattr(getattr(cls, "queryset", None), "model", None)
        if model in scoped_models:
            assert issubclass(cls, TenantScopedViewSet), cls
        if issubclass(cls, TenantScopedViewSet):
            routed = {name for name in ("list", "retrieve", "create", "update", "partial_update", "destroy")
                      if hasattr(cls, name)}
            extra = {name for name, fn in inspect.getmembers(cls) if hasattr(fn, "mapping")}
            missing = (routed | extra) - set(cls.action_permissions)
            assert not missing, f"{cls.__name__} lacks action_permissions for {missing}"


def _all_models():
    from django.apps import apps

    return apps.get_models()


def test_views_and_viewsets_do_not_write_models_directly():
    """Views call services: no .save()/.create()/.delete() on models in view modules."""
    import pathlib
    import re

    offenders = []
    for path in pathlib.Path("apps").glob("*/**/views.py"):
        text = path.read_text()
        for pattern in (r"\.objects\.(create|update|bulk_create|get_or_create|update_or_create)\(", r"\.save\(",
                        r"\.delete\(\)"):
            if re.search(pattern, text):
                offenders.append(f"{path}: {pattern}")
    assert offenders == []


def test_the_api_schema_is_valid_and_has_no_warnings():
    """drf-spectacular warns about what makes the published schema wrong (two serializers of
    one name, a view whose model it cannot see): the schema stays valid and warning-free."""
    from django.core.management import call_command

    try:
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    except Exception as exc:  # drf-spectacular raises its SchemaGenerationError
        raise AssertionError(f"the API schema has problems: {exc}") from exc
