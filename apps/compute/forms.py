from django import forms


class InstanceCreateForm(forms.Form):
    name = forms.CharField(max_length=128)
    flavor = forms.ChoiceField()
    image = forms.ChoiceField()
    key_pair = forms.ChoiceField(required=False)
    isolation_group = forms.ChoiceField(required=False)
    count = forms.IntegerField(min_value=1, max_value=20, initial=1)
    user_data = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), strip=False)

    def __init__(self, *args, flavors, images, key_pairs, groups, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["flavor"].choices = [(f.name, str(f)) for f in flavors]
        self.fields["image"].choices = [(i.public_id, i.name) for i in images]
        self.fields["key_pair"].choices = [("", "none")] + [(k.public_id, k.name) for k in key_pairs]
        self.fields["isolation_group"].choices = [("", "none")] + [
            (g.public_id, f"{g.name} ({g.policy})") for g in groups]
