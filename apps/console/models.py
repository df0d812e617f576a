"""Console sessions: one row per ticket, from minting to the end of the relayed connection.

The ticket itself is never stored, only its SHA-256 (a ticket carries 256 random bits, so a
fast hash is enough). The row is the session's record: who opened which console, from
where, through which proxy, for how long and how many bytes went each way."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.models import PublicIdModel


class ConsoleSession(PublicIdModel):
    public_id_prefix = "cs"

    ISSUED, OPEN, CLOSED, EXPIRED = "issued", "open", "closed", "expired"
    STATUS_CHOICES = [(ISSUED, "ticket issued"), (OPEN, "open"), (CLOSED, "closed"), (EXPIRED, "ticket expired")]
    CHANNELS, WEBSOCKIFY = "channels", "websockify"
    PROXY_CHOICES = [(CHANNELS, "portal (channels)"), (WEBSOCKIFY, "console process (websockify)")]

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey("compute.Instance", on_delete=models.CASCADE, related_name="console_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    ticket_hash = models.CharField(max_length=64, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=ISSUED)
    # The address the ticket was minted for (None when unknown) and the one that used it.
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    peer_ip = models.GenericIPAddressField(null=True, blank=True)
    proxy = models.CharField(max_length=16, choices=PROXY_CHOICES, blank=True)
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    # The relay writes this every recheck; an open session not seen for a while lost its proxy.
    last_seen_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=255, blank=True)
    # Set by an operator (or a service) to end an open session at the relay's next recheck.
    terminate_reason = models.CharField(max_length=255, blank=True)
    bytes_to_guest = models.BigIntegerField(default=0)
    bytes_to_client = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-issued_at", "-id"]
        indexes = [
            models.Index(fields=["status", "instance"], name="console_open_by_instance"),
            models.Index(fields=["status", "user"], name="console_open_by_user"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.instance.public_id}, {self.status})"

    @property
    def duration_seconds(self) -> int | None:
        if self.opened_at is None:
            return None
        return int(((self.closed_at or timezone.now()) - self.opened_at).total_seconds())
