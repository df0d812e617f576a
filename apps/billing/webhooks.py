"""Payment gateways' webhooks: no login and no CSRF token (the gateway's signature is the proof),
POST only. A bad signature is 400 and nothing is recorded; everything else the portal has read
is 200, so the gateway stops resending it."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.billing import payment_services
from apps.billing.gateways.base import BadSignature
from apps.core.exceptions import DomainError


@csrf_exempt
@require_POST
def gateway_webhook(request: HttpRequest, gateway: str) -> JsonResponse:
    try:
        outcome = payment_services.handle_event(gateway, request.body, request.headers)
    except BadSignature as exc:
        return JsonResponse({"received": False, "code": "bad_signature", "message": str(exc)}, status=400)
    except DomainError as exc:
        return JsonResponse({"received": False, "code": exc.code, "message": exc.message}, status=exc.status)
    return JsonResponse({"received": True, "outcome": outcome})
