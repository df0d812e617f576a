"""Fifty concurrent creations against a limit of ten: exactly ten succeed, ten are counted.

Runs on whatever database the suite runs on: PostgreSQL locks the quota row
(select_for_update); SQLite serialises writers (IMMEDIATE transactions)."""

import pytest
from django.db import connection

from apps.core.models import AuditRecord
from apps.tenants import services
from apps.tenants.models import KeyPair, Quota
from tests.concurrency import race
from tests.factories.tenants import actor_for

ATTEMPTS = 50
LIMIT = 10


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_creates_never_overshoot_the_quota(a_owner, operator):
    services.set_quota(operator, tenant=a_owner.tenant, resource="key_pairs", limit=LIMIT)
    owner = actor_for(a_owner)
    outcomes = race(ATTEMPTS, lambda n: services.generate_key_pair(owner, name=f"race-{n}"))

    assert sorted(set(outcomes)) == ["ok", "quota_exceeded"], outcomes
    assert outcomes.count("ok") == LIMIT
    assert KeyPair.objects.filter(tenant=a_owner.tenant).count() == LIMIT
    row = Quota.objects.get(tenant=a_owner.tenant, resource="key_pairs")
    assert (row.in_use, row.reserved) == (LIMIT, 0)
    assert AuditRecord.objects.filter(action="keypair.generate", result="ok").count() == LIMIT
    assert AuditRecord.objects.filter(action="keypair.generate", error_code="quota_exceeded").count() == ATTEMPTS - LIMIT
    print(f"{connection.vendor}: {outcomes.count('ok')} created, {outcomes.count('quota_exceeded')} refused")
