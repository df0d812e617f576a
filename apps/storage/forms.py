from django import forms


class VolumeCreateForm(forms.Form):
    name = forms.CharField(max_length=128)
    size_gb = forms.IntegerField(label="Size (GiB)", required=False, min_value=1,
                                 help_text="Empty: the image's or snapshot's size.")
    volume_type = forms.ChoiceField(required=False)
    image = forms.ChoiceField(required=False, help_text="A disk image makes a bootable volume.")
    snapshot = forms.ChoiceField(required=False)

    def __init__(self, *args, volume_types, images, snapshots, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["volume_type"].choices = [("", "default")] + [(t.name, str(t)) for t in volume_types]
        self.fields["image"].choices = [("", "none (empty)")] + [(i.public_id, i.name) for i in images]
        self.fields["snapshot"].choices = [("", "none")] + [
            (s.public_id, f"{s.name} ({s.volume.name}, {s.size_gb} GiB)") for s in snapshots]

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {"name": data["name"], "size_gb": data["size_gb"], "volume_type": data["volume_type"] or None,
                "image": data["image"] or None, "snapshot": data["snapshot"] or None}


class AttachForm(forms.Form):
    instance = forms.ChoiceField()

    def __init__(self, *args, instances, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instance"].choices = [(i.public_id, f"{i.name} ({i.public_id})") for i in instances]


class ResizeForm(forms.Form):
    size_gb = forms.IntegerField(label="New size (GiB)", min_value=1)


class SnapshotForm(forms.Form):
    name = forms.CharField(max_length=128)
