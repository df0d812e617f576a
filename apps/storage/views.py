"""Console pages for block storage: volumes (list with live status, create, detail with
attach/detach/resize/snapshot/delete) and their snapshots (revert, delete)."""

from django.shortcuts import redirect

from apps.billing import metering
from apps.compute.selectors import list_images, list_instances
from apps.core.exceptions import DomainError
from apps.core.validation import lookup
from apps.core.views import ConsoleView, error_status
from apps.storage import forms, selectors, services
from apps.storage.models import Snapshot, Volume


def _get_volume(actor, public_id: str) -> Volume:
    return lookup(actor, selectors.list_volumes(actor), public_id, field="volume", label="volume")


class VolumeListView(ConsoleView):
    template_name = "storage/volume_list.html"

    def _form(self, data=None):
        return forms.VolumeCreateForm(
            data, volume_types=selectors.list_volume_types(self.actor),
            images=list_images(self.actor).filter(status="active", boot="disk"),
            snapshots=selectors.list_snapshots(self.actor).filter(status=Snapshot.AVAILABLE),
        )

    def get(self, request, form=None, status=200):
        template = "storage/_volume_rows.html" if request.headers.get("HX-Request") else None
        volumes = selectors.list_volumes(self.actor).exclude(status__in=(Volume.DELETED, Volume.RECYCLED))
        recycled = selectors.list_volumes(self.actor).filter(status=Volume.RECYCLED)
        form = form or self._form()
        return self.render({"page": self.paginate(volumes), "recycled": recycled, "form": form,
                            "can_create": self.actor.allows("storage", "create"),
                            "estimate": volume_estimate(self.actor, {"volume_type": form["volume_type"].value(),
                                                                     "size_gb": form["size_gb"].value()})},
                           status=status, template=template)

    def post(self, request):
        form = self._form(request.POST)
        if not form.is_valid():
            return self.get(request, form=form, status=400)
        ok, result = self.call(form, services.create_volume, success="Volume creation started.",
                               **form.service_arguments())
        if not ok:
            return self.get(request, form=form, status=error_status(result))
        return redirect("volume-detail", public_id=result.public_id)


def volume_estimate(actor, data) -> metering.Estimate | None:
    """The price of the create form's volume (`volume_type`, `size_gb`) for the actor's tenant;
    None when there is nothing to price yet (no size, no such type, no tenant)."""
    size = str(data.get("size_gb") or "")
    if actor.tenant is None or not size.isdigit() or not 1 <= int(size) <= services.MAX_VOLUME_GB:
        return None
    try:
        volume_type = services.volume_type_for(actor, data.get("volume_type") or None)
    except DomainError:
        return None
    return metering.estimate_volume(actor.tenant, volume_type=volume_type, size_gb=int(size))


class VolumeEstimateView(ConsoleView):
    """The create form's price, asked again whenever the form changes (htmx)."""

    def get(self, request):
        return self.render({"estimate": volume_estimate(self.actor, request.GET)}, template="compute/_price.html")


class VolumeDetailView(ConsoleView):
    template_name = "storage/volume_detail.html"

    def get(self, request, public_id):
        volume = _get_volume(self.actor, public_id)
        snapshots = selectors.list_snapshots(self.actor).filter(volume=volume).exclude(status=Snapshot.DELETED)
        if request.headers.get("HX-Request"):
            return self.render({"volume": volume, "snapshots": snapshots}, template="storage/_volume_status.html")
        attachable = list_instances(self.actor).filter(status__in=("running", "stopped")).exclude(
            volume_attachments__volume=volume)
        return self.render({
            "volume": volume, "snapshots": snapshots, "attach_form": forms.AttachForm(instances=attachable),
            "resize_form": forms.ResizeForm(), "snapshot_form": forms.SnapshotForm(),
        })


class VolumeActionView(ConsoleView):
    """The detail page's forms (attach, detach, resize, snapshot, delete) and the recycle
    bin's (restore, delete now)."""

    def post(self, request, public_id, action):
        volume = _get_volume(self.actor, public_id)
        if action == "attach":
            instance = lookup(self.actor, list_instances(self.actor), request.POST.get("instance", ""),
                              field="instance", label="instance")
            self.call(None, services.attach_volume, volume=volume, instance=instance, success="Attaching.")
        elif action == "detach":
            self.call(None, services.detach_volume, volume=volume, success="Detaching.")
        elif action == "resize":
            form = forms.ResizeForm(request.POST)
            if form.is_valid():
                self.call(None, services.resize_volume, volume=volume, size_gb=form.cleaned_data["size_gb"],
                          success="Growing the volume.")
        elif action == "snapshot":
            form = forms.SnapshotForm(request.POST)
            if form.is_valid():
                self.call(None, services.create_snapshot, volume=volume, name=form.cleaned_data["name"],
                          success="Taking a snapshot.")
        elif action == "delete":
            ok, _ = self.call(None, services.delete_volume, volume=volume, success="Deleted.")
            if ok:
                return redirect("volume-list")
        elif action == "restore":
            ok, _ = self.call(None, services.restore_volume, volume=volume, success="Restored.")
            if ok:
                return redirect("volume-list")
        return redirect("volume-detail", public_id=public_id)


class SnapshotActionView(ConsoleView):
    def post(self, request, public_id, action):
        snapshot = lookup(self.actor, selectors.list_snapshots(self.actor), public_id, field="snapshot",
                          label="snapshot")
        if action == "revert":
            self.call(None, services.revert_to_snapshot, snapshot=snapshot, success="Reverting the volume.")
        elif action == "delete":
            self.call(None, services.delete_snapshot, snapshot=snapshot, success="Deleting the snapshot.")
        return redirect("volume-detail", public_id=snapshot.volume.public_id)
