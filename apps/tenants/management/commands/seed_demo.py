"""Seed an operator, a demo tenant with an owner and a read-only sub-account, and print the
URL and logins. Safe to run again: existing accounts are kept, their passwords come from the
credentials file in VAR_DIR (0600), written on the first run."""

import json
import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from apps.core.actor import Actor
from apps.core.policies import READONLY
from apps.tenants import services
from apps.tenants.models import Membership

User = get_user_model()
DEMO_TENANT = "Demo"


def _password() -> str:
    return secrets.token_urlsafe(12)


class Command(BaseCommand):
    help = "Create the demo operator, tenant and users (idempotent) and print the logins."

    def handle(self, *args, **options):
        path = settings.VAR_DIR / "seed-logins.json"
        logins = json.loads(path.read_text()) if path.exists() else {}
        for name in ("operator", "demo", "demo-viewer"):
            logins.setdefault(name, _password())
        path.write_text(json.dumps(logins, indent=2))
        path.chmod(0o600)

        operator, created = User.objects.get_or_create(
            username="operator", defaults={"is_staff": True, "is_superuser": True, "email": "operator@localhost"}
        )
        if created:
            operator.set_password(logins["operator"])
            operator.save()

        system = Actor.system()
        owner = User.objects.filter(username="demo").first()
        if owner is None:
            owner = User.objects.create_user("demo", "demo@localhost", logins["demo"])
        membership = Membership.objects.filter(user=owner, tenant__name=DEMO_TENANT).select_related("tenant").first()
        tenant = membership.tenant if membership else services.create_tenant(system, name=DEMO_TENANT, owner=owner)
        if not User.objects.filter(username="demo-viewer").exists():
            services.create_sub_account(
                Actor.system(tenant=tenant),
                username="demo-viewer",
                email="viewer@localhost",
                password=logins["demo-viewer"],
                role=READONLY,
            )

        host = os.environ.get("PORTAL_HOST", "127.0.0.1")
        port = os.environ.get("PORTAL_PORT", "8000")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"Cloud portal:  http://{host}:{port}/",
                    f"Back office:   http://{host}:{port}/backoffice/",
                    f"API docs:      http://{host}:{port}/api/docs/",
                    f"  operator     / {logins['operator']}   (back office)",
                    f"  demo         / {logins['demo']}   (owner of tenant {tenant.name} {tenant.public_id})",
                    f"  demo-viewer  / {logins['demo-viewer']}   (read-only sub-account)",
                    f"(logins kept in {path.name} under the state folder)",
                    "",
                ]
            )
        )
