"""Console pages for instances: list with live status, create, detail, power actions."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect

from apps.billing import metering
from apps.compute import forms, selectors, services
from apps.compute.models import Instance
from apps.core.exceptions import Conflict
from apps.core.views import ConsoleView, error_status
from apps.network import selectors as network_selectors
from apps.tenants.selectors import list_key_pairs


class InstanceListView(ConsoleView):
    template_name = "compute/instance_list.html"

    def _form(self, data=None):
        return forms.InstanceCreateForm(
            data,
            flavors=selectors.list_flavors(self.actor),
            images=selectors.list_images(self.actor).filter(status="active"),
            key_pairs=list_key_pairs(self.actor),
            groups=selectors.list_instance_groups(self.actor),
            subnets=network_selectors.list_subnets(self.actor),
            security_groups=network_selectors.list_security_groups(self.actor),
        )

    def get(self, request, form=None, status=200):
        form = form or self._form()
        flavor = form["flavor"].value() or next((name for name, _label in form.fields["flavor"].choices), "")
        instances = selectors.list_instances(self.actor)
        recycled = instances.filter(status=Instance.RECYCLED)
        if request.headers.get("HX-Request"):  # the live parts: the rows, or the recycle bin
            if request.GET.get("part") == "recycle-bin":
                return self.render({"recycled": recycled}, template="compute/_recycle_bin.html")
            template = "compute/_instance_rows.html"
        else:
            template = None
        return self.render(
            {"page": self.paginate(instances.exclude(status=Instance.RECYCLED)), "recycled": recycled,
             "form": form, "can_create": self.actor.allows("compute", "create"),
             "estimate": instance_estimate(self.actor, {"flavor": flavor, "count": form["count"].value()})},
            status=status, template=template,
        )

    def post(self, request):
        form = self._form(request.POST)
        if not form.is_valid():
            return self.get(request, form=form, status=400)
        ok, result = self.call(form, services.create_instances, success="Instance creation started.",
                               **form.service_arguments())
        if not ok:
            return self.get(request, form=form, status=error_status(result))
        return redirect("instance-list")


def instance_estimate(actor, data) -> metering.Estimate | None:
    """The price of the create form's instances (`flavor`, `count`), for the actor's tenant;
    None when there is nothing to price (no tenant, no such flavor)."""
    flavor = selectors.list_flavors(actor).filter(name=data.get("flavor") or "").first()
    if actor.tenant is None or flavor is None:
        return None
    count = str(data.get("count") or "1")
    count = int(count) if count.isdigit() and 1 <= int(count) <= services.MAX_BATCH else 1
    return metering.estimate_instance(actor.tenant, flavor=flavor, region=settings.PORTAL_DEFAULT_REGION,
                                      count=count)


class InstanceEstimateView(ConsoleView):
    """The create form's price, asked again whenever the form changes (htmx)."""

    def get(self, request):
        return self.render({"estimate": instance_estimate(self.actor, request.GET)}, template="compute/_price.html")


def _change_forms(actor, instance, data=None) -> dict:
    """The detail page's resize and rebuild forms: other flavors, images of the same boot type."""
    flavors = selectors.list_flavors(actor).exclude(pk=instance.flavor_id)
    images = selectors.list_images(actor).filter(status="active", boot=instance.image.boot)
    return {"resize": forms.ResizeForm(data, flavors=flavors),
            "rebuild": forms.RebuildForm(data, images=images, initial={"image": instance.image.public_id})}


class InstanceDetailView(ConsoleView):
    template_name = "compute/instance_detail.html"

    def get(self, request, public_id):
        # A page left open on an instance deleted meanwhile still refreshes its status to "deleted".
        instance = selectors.get_instance(self.actor, public_id, include_deleted=bool(request.headers.get("HX-Request")))
        template = "compute/_instance_status.html" if request.headers.get("HX-Request") else None
        return self.render(
            {"instance": instance, "actions": selectors.instance_actions(self.actor, instance)[:20],
             "forms": _change_forms(self.actor, instance)},
            template=template,
        )


class InstanceConsoleLogView(ConsoleView):
    """The tail of the serial console, loaded into the detail page on demand (htmx)."""

    def get(self, request, public_id):
        instance = selectors.get_instance(self.actor, public_id)
        try:
            context = {"text": services.console_log(self.actor, instance=instance), "ok": True}
        except Conflict as exc:  # e.g. a remote host whose logs are not collected
            context = {"text": exc.message, "ok": False}
        return self.render(context, template="compute/_console_log.html")


ACTIONS = {
    "start": (services.start_instance, {}),
    "stop": (services.stop_instance, {}),
    "force-stop": (services.stop_instance, {"force": True}),
    "reboot": (services.reboot_instance, {}),
    "hard-reboot": (services.reboot_instance, {"hard": True}),
    "delete": (services.delete_instance, {}),
    "delete-now": (services.delete_instance, {"force": True}),
    "restore": (services.restore_instance, {}),
}
# Actions with a form on the detail page: the form's one field is the service's argument.
FORM_ACTIONS = {"resize": services.resize_instance, "rebuild": services.rebuild_instance}


class InstanceActionView(ConsoleView):
    def post(self, request, public_id, action):
        instance = selectors.get_instance(self.actor, public_id)
        if action in FORM_ACTIONS:
            # The page is shown again after a redirect: refusals go to its messages, not the form.
            form = _change_forms(self.actor, instance, request.POST)[action]
            if form.is_valid():
                self.call(None, FORM_ACTIONS[action], instance=instance, success=f"{action.capitalize()} requested.",
                          **form.cleaned_data)
            else:
                messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
            return redirect("instance-detail", public_id=public_id)
        if action not in ACTIONS:
            return redirect("instance-detail", public_id=public_id)
        service, options = ACTIONS[action]
        self.call(None, service, instance=instance, success=f"{action.replace('-', ' ').capitalize()} requested.",
                  **options)
        if action in ("delete", "delete-now", "restore"):
            return redirect("instance-list")
        return redirect("instance-detail", public_id=public_id)
