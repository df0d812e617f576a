"""Template context every console page needs: the actor, the tenant switcher and the nav."""

from django.conf import settings

from apps.core.nav import navigation


def portal(request):
    actor = getattr(request, "actor", None)
    context = {"site_name": settings.PORTAL_SITE_NAME, "actor": actor}
    if actor is not None and getattr(request, "user", None) is not None and request.user.is_authenticated:
        from apps.tenants.selectors import memberships_of

        context["my_memberships"] = memberships_of(request.user)
        context["nav"] = navigation(request, actor)
    return context
