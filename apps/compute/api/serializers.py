from decimal import Decimal

from rest_framework import serializers

from apps.compute.models import Flavor, Host, Image, Instance, InstanceGroup


class FlavorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Flavor
        fields = ["name", "description", "vcpus", "ram_mb", "disk_gb", "gpu_count", "gpu_type", "is_public"]
        read_only_fields = fields


class ImageSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    owner = serializers.CharField(source="owner.public_id", default=None)

    class Meta:
        model = Image
        fields = ["id", "name", "description", "owner", "visibility", "status", "os_type", "os_distro", "os_version",
                  "arch", "boot", "disk_format", "size_bytes", "checksum_sha256", "min_disk_gb", "min_ram_mb",
                  "cloud_init", "guest_agent", "created_at"]
        read_only_fields = fields


class InterfaceSerializer(serializers.Serializer):
    port = serializers.CharField(source="public_id")
    subnet = serializers.CharField(source="subnet.public_id")
    mac_address = serializers.CharField()
    device_index = serializers.IntegerField()
    ip_addresses = serializers.SerializerMethodField()

    def get_ip_addresses(self, port) -> list[str]:
        return [a.address for a in port.addresses.all()]


class InstanceSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    flavor = serializers.CharField(source="flavor.name")
    image = serializers.CharField(source="image.public_id")
    key_pair = serializers.CharField(source="key_pair.public_id", default=None)
    availability_zone = serializers.CharField(source="availability_zone.code", default=None)
    host = serializers.CharField(source="host.name", default=None, help_text="Shown to operators only.")
    isolation_group = serializers.CharField(source="group.public_id", default=None)
    interfaces = InterfaceSerializer(source="ports", many=True, read_only=True)

    class Meta:
        model = Instance
        fields = ["id", "name", "description", "status", "status_reason", "region", "availability_zone", "flavor",
                  "image", "key_pair", "isolation_group", "vcpus", "ram_mb", "interfaces", "tags", "metadata", "host",
                  "created_at", "launched_at", "recycled_at"]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        actor = self.context.get("actor")
        if actor is None or not actor.is_operator:
            data.pop("host")
        return data


class InstanceCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    flavor = serializers.CharField(max_length=64, help_text="Flavor name, e.g. t1.nano")
    image = serializers.CharField(max_length=32, help_text="Image id (img-…)")
    key_pair = serializers.CharField(max_length=32, required=False, allow_null=True, default=None)
    count = serializers.IntegerField(default=1)
    availability_zone = serializers.CharField(max_length=64, required=False, allow_null=True, default=None)
    user_data = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)
    isolation_group = serializers.CharField(max_length=32, required=False, allow_null=True, default=None)
    subnet = serializers.CharField(max_length=32, required=False, allow_null=True, default=None,
                                   help_text="Subnet (subnet-…) of the primary network interface")
    security_groups = serializers.ListField(child=serializers.CharField(max_length=32), required=False,
                                            allow_null=True, default=None, max_length=10,
                                            help_text="Of the interface; default: the VPC's default group")
    ip_address = serializers.CharField(max_length=45, required=False, allow_null=True, default=None,
                                       help_text="Fixed address of the interface (count 1 only)")
    password = serializers.CharField(required=False, allow_blank=True, default="", write_only=True,
                                     trim_whitespace=False, max_length=128, style={"input_type": "password"},
                                     help_text="Root password (8 to 72 characters), for images that run cloud-init; "
                                               "kept only as a SHA-512 crypt hash")
    billing_mode = serializers.ChoiceField(choices=["on_demand", "monthly", "yearly"], default="on_demand",
                                           help_text="On demand (billed per second while running), or prepaid "
                                                     "monthly or yearly periods charged now")
    periods = serializers.IntegerField(default=1, min_value=1, max_value=36,
                                       help_text="Prepaid: how many months or years")
    auto_renew = serializers.BooleanField(default=False, help_text="Prepaid: renew at expiry from the wallet")


class EstimateLineSerializer(serializers.Serializer):
    product = serializers.CharField(source="product_code")
    quantity = serializers.DecimalField(max_digits=15, decimal_places=3)
    hourly = serializers.DecimalField(max_digits=24, decimal_places=6)
    monthly = serializers.DecimalField(max_digits=19, decimal_places=4, allow_null=True)
    yearly = serializers.DecimalField(max_digits=19, decimal_places=4, allow_null=True)


class EstimateSerializer(serializers.Serializer):
    """The price before create (apps.billing.metering.Estimate): on demand per hour and per
    month, prepaid per month and per year (null: not sold so); free products are left out."""

    currency = serializers.CharField()
    count = serializers.IntegerField()
    hourly = serializers.DecimalField(max_digits=24, decimal_places=6)
    on_demand_monthly = serializers.DecimalField(max_digits=19, decimal_places=4)
    monthly = serializers.DecimalField(max_digits=19, decimal_places=4, allow_null=True)
    yearly = serializers.DecimalField(max_digits=19, decimal_places=4, allow_null=True)
    is_free = serializers.BooleanField()
    lines = EstimateLineSerializer(many=True)


class InstanceEstimateSerializer(serializers.Serializer):
    flavor = serializers.CharField(max_length=64, help_text="Flavor name, e.g. t1.nano")
    region = serializers.CharField(max_length=64, required=False, allow_null=True, default=None,
                                   help_text="Default: the platform's region")
    count = serializers.IntegerField(default=1, min_value=1, max_value=20)


class InstanceUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=128), required=False, max_length=50)
    metadata = serializers.DictField(child=serializers.CharField(max_length=256), required=False)


class StopSerializer(serializers.Serializer):
    force = serializers.BooleanField(default=False)


class RebootSerializer(serializers.Serializer):
    hard = serializers.BooleanField(default=False)


class RebuildSerializer(serializers.Serializer):
    image = serializers.CharField(max_length=32, required=False, allow_null=True, default=None,
                                  help_text="Another image id; default: the current image.")


class ResizeSerializer(serializers.Serializer):
    flavor = serializers.CharField(max_length=64)


class PasswordSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=32, default="root")
    password = serializers.CharField(max_length=128, write_only=True)


class InstanceGroupSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    instances = serializers.SerializerMethodField()

    class Meta:
        model = InstanceGroup
        fields = ["id", "name", "policy", "instances", "created_at"]
        read_only_fields = fields

    def get_instances(self, group) -> list[str]:
        return [i.public_id for i in group.instances.all() if i.deleted_at is None]


class InstanceGroupCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    policy = serializers.ChoiceField(choices=InstanceGroup.POLICY_CHOICES)


class HostSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    region = serializers.CharField(source="cluster.region.code")
    availability_zone = serializers.CharField(source="cluster.code")
    effective_virt_type = serializers.CharField()
    vcpus_capacity = serializers.IntegerField()
    memory_mb_capacity = serializers.IntegerField()

    class Meta:
        model = Host
        fields = ["id", "name", "region", "availability_zone", "uri", "management_address", "state", "state_reason",
                  "virt_type", "effective_virt_type", "cpu_allocation_ratio", "ram_allocation_ratio",
                  "reserved_memory_mb", "hostname", "arch", "cpu_model", "vcpus", "memory_mb", "numa_nodes",
                  "kvm_usable", "pci_devices", "vcpus_capacity", "memory_mb_capacity", "vcpus_used",
                  "memory_mb_used", "instances_count", "heartbeat_at"]
        read_only_fields = fields


class HostCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    uri = serializers.CharField(max_length=255)
    region = serializers.CharField(max_length=64)
    availability_zone = serializers.CharField(max_length=64)
    management_address = serializers.IPAddressField(default="127.0.0.1")
    cpu_allocation_ratio = serializers.DecimalField(max_digits=5, decimal_places=2, required=False, min_value=Decimal("0.1"))
    ram_allocation_ratio = serializers.DecimalField(max_digits=5, decimal_places=2, required=False, min_value=Decimal("0.1"))


class HostStateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=[Host.ENABLED, Host.DISABLED, Host.MAINTENANCE])
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class MigrateSerializer(serializers.Serializer):
    host = serializers.CharField(max_length=32, required=False, allow_null=True, default=None,
                                 help_text="Target host id; default: chosen by the scheduler.")
    live = serializers.BooleanField(default=False, help_text="Move the running guest without stopping it "
                                                             "(progress in an operation); false: cold migration.")


class ImageDescriptionSerializer(serializers.Serializer):
    """What a tenant says about an image it brings; the file itself is checked by the portal."""

    name = serializers.CharField(max_length=128)
    checksum_sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    os_type = serializers.ChoiceField(choices=["linux", "windows"], default="linux")
    os_distro = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    os_version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    arch = serializers.ChoiceField(choices=["x86_64", "aarch64"], default="x86_64")
    min_ram_mb = serializers.IntegerField(min_value=64, default=64)


class ImageUploadSerializer(ImageDescriptionSerializer):
    file = serializers.FileField(help_text="qcow2 or raw; the format is detected from the content.")
    min_disk_gb = serializers.IntegerField(min_value=0, default=0)


class ImageImportSerializer(ImageDescriptionSerializer):
    url = serializers.URLField(max_length=1000, help_text="Must start with an operator-allowed prefix.")


class CreateImageSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
