"""Console page plumbing (the page twin of TenantScopedViewSet) and the platform pages:
dashboard, tenant switcher, audit log, operations."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.views import View
from django.views.decorators.http import require_POST

from apps.core import selectors, services
from apps.core.exceptions import DomainError, NotFound, PermissionDenied
from apps.core.filters import AuditRecordFilter, OperationFilter
from apps.core.middleware import SESSION_TENANT_KEY
from apps.core.models import Operation
from apps.core.tasks import export_path

PAGE_SIZE = 25


class ConsoleView(LoginRequiredMixin, View):
    """Base of every tenant console page: the actor from the request, domain errors shown as
    pages (another tenant's object → 404, not allowed → 403 with the reason)."""

    template_name = ""

    @property
    def actor(self):
        return self.request.actor

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message)
        except PermissionDenied as exc:
            return render(request, "core/denied.html", {"message": exc.message}, status=403)

    def render(self, context: dict | None = None, *, status: int = 200, template: str | None = None,
               secret: bool = False):
        """`secret`: the page shows a one-time secret (private key, token) that no cache may keep."""
        response = render(self.request, template or self.template_name, context or {}, status=status)
        if secret:
            patch_cache_control(response, no_store=True, no_cache=True, private=True)
        return response

    def paginate(self, queryset):
        return Paginator(queryset, PAGE_SIZE).get_page(self.request.GET.get("page"))

    def call(self, form, service, *args, success: str = "", **kwargs):
        return run_service(self.request, form, service, *args, success=success, **kwargs)


def run_service(request, form, service, *args, success: str = "", **kwargs):
    """Run a service for a form post as `request.actor`. Returns (ok, result or error); a
    refused or invalid call puts its message on the form (field errors on their fields) or,
    without a form, on the page."""
    try:
        result = service(request.actor, *args, **kwargs)
    except NotFound:
        raise  # the page answers 404, as for a row that is not there
    except DomainError as exc:  # invalid, refused, conflicting, unaffordable (402), unavailable
        for field, errors in exc.fields.items():
            for error in errors:
                if form is not None:
                    form.add_error(field if field in form.fields else None, error)
        if form is None or not exc.fields:
            messages.error(request, exc.message)
        return False, exc
    if success:
        messages.success(request, success)
    return True, result


def error_status(exc: DomainError | None) -> int:
    return exc.status if isinstance(exc, DomainError) else 400


class DashboardView(ConsoleView):
    template_name = "core/dashboard.html"

    def get(self, request):
        from apps.tenants.selectors import quota_usage

        return self.render(
            {
                "quotas": quota_usage(self.actor),
                "recent_audit": selectors.list_audit_records(self.actor)[:8],
                "operations": selectors.list_operations(self.actor)[:5],
            }
        )


class QuotaFragment(ConsoleView):
    """The dashboard's quota bars, re-fetched by htmx when a live event arrives."""

    def get(self, request):
        from apps.tenants.selectors import quota_usage

        return self.render({"quotas": quota_usage(self.actor)}, template="core/_quotas.html")


@require_POST
def switch_tenant(request):
    """Make another of the user's tenants the current one for the console session."""
    if not request.user.is_authenticated:
        return redirect("login")
    from apps.tenants.selectors import memberships_of

    wanted = request.POST.get("tenant", "")
    membership = memberships_of(request.user).filter(tenant__public_id=wanted).first()
    if membership is None:
        messages.error(request, "That tenant is not one of yours.")
    else:
        request.session[SESSION_TENANT_KEY] = wanted
        messages.success(request, f"Now working in {membership.tenant.name}.")
    return redirect("dashboard")


class AuditListView(ConsoleView):
    template_name = "core/audit_list.html"

    def get(self, request):
        if not self.actor.allows("audit", "view"):
            raise PermissionDenied("Your role does not allow reading the audit log.")
        filterset = AuditRecordFilter(request.GET, queryset=selectors.list_audit_records(self.actor))
        return self.render({"filter": filterset, "page": self.paginate(filterset.qs)})

    def post(self, request):
        """Start a CSV export of what the filters select."""
        filters = {k: v for k, v in request.POST.items() if k in AuditRecordFilter.base_filters}
        ok, result = self.call(None, services.export_audit_log, filters=filters)
        if ok:
            return redirect("operation-detail", public_id=result.public_id)
        return redirect("audit-list")


class OperationListView(ConsoleView):
    template_name = "core/operation_list.html"

    def get(self, request):
        filterset = OperationFilter(request.GET, queryset=selectors.list_operations(self.actor))
        return self.render({"filter": filterset, "page": self.paginate(filterset.qs)})


class OperationDetailView(ConsoleView):
    template_name = "core/operation_detail.html"

    def get(self, request, public_id):
        operation = selectors.get_operation(self.actor, public_id)
        template = "core/_operation.html" if request.headers.get("HX-Request") else None
        return self.render({"operation": operation}, template=template)


class OperationDownloadView(ConsoleView):
    def get(self, request, public_id):
        operation = selectors.get_operation(self.actor, public_id)
        path = export_path(operation)
        if operation.status != Operation.SUCCEEDED or not path.exists():
            raise Http404("No file for this operation.")
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name, content_type="text/csv")
