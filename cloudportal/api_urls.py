"""Every API route under /api/v1/. The isolation test walks this router."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.billing.api import views as billing
from apps.compute.api import views as compute
from apps.core.api.platform_views import AuditLogViewSet, OperationViewSet
from apps.network.api import views as network
from apps.storage.api import views as storage
from apps.tenants.api import views as tenants

router = SimpleRouter()
router.trailing_slash = "/?"  # accept /api/v1/instances and /api/v1/instances/ alike
router.register("members", tenants.MemberViewSet, basename="member")
router.register("tokens", tenants.ApiTokenViewSet, basename="token")
router.register("key-pairs", tenants.KeyPairViewSet, basename="key-pair")
router.register("tenants", tenants.MyTenantsViewSet, basename="my-tenant")
router.register("audit-log", AuditLogViewSet, basename="audit-log")
router.register("instances", compute.InstanceViewSet, basename="instance")
router.register("flavors", compute.FlavorViewSet, basename="flavor")
router.register("images", compute.ImageViewSet, basename="image")
router.register("instance-groups", compute.InstanceGroupViewSet, basename="instance-group")
router.register("hosts", compute.HostViewSet, basename="host")
router.register("volumes", storage.VolumeViewSet, basename="volume")
router.register("snapshots", storage.SnapshotViewSet, basename="snapshot")
router.register("backups", storage.BackupViewSet, basename="backup")
router.register("volume-types", storage.VolumeTypeViewSet, basename="volume-type")
router.register("storage-pools", storage.StoragePoolViewSet, basename="storage-pool")
router.register("vpcs", network.VpcViewSet, basename="vpc")
router.register("subnets", network.SubnetViewSet, basename="subnet")
router.register("ports", network.PortViewSet, basename="port")
router.register("security-groups", network.SecurityGroupViewSet, basename="security-group")
router.register("external-networks", network.ExternalNetworkViewSet, basename="external-network")
router.register("eips", network.ElasticIPViewSet, basename="eip")
router.register("nat-gateways", network.NatGatewayViewSet, basename="nat-gateway")
router.register("havips", network.HaVipViewSet, basename="havip")
router.register("load-balancers", network.LoadBalancerViewSet, basename="load-balancer")
router.register("operations", OperationViewSet, basename="operation")
router.register("transactions", billing.TransactionViewSet, basename="transaction")
router.register("usage", billing.UsageViewSet, basename="usage")
router.register("orders", billing.OrderViewSet, basename="order")
router.register("subscriptions", billing.SubscriptionViewSet, basename="subscription")
router.register("payments", billing.PaymentViewSet, basename="payment")
router.register("notices", billing.NoticeViewSet, basename="notice")

urlpatterns = [
    path("signup", tenants.SignUpViewSet.as_view({"post": "create"}), name="signup"),
    path("tenant", tenants.CurrentTenantViewSet.as_view({"get": "list", "patch": "partial_update"}), name="tenant"),
    path("roles", tenants.RoleViewSet.as_view({"get": "list"}), name="roles"),
    path("policies", tenants.PolicyViewSet.as_view({"get": "list"}), name="policies"),
    path("quotas", tenants.QuotaViewSet.as_view({"get": "list"}), name="quotas"),
    path("wallet", billing.WalletViewSet.as_view({"get": "list", "patch": "partial_update"}), name="wallet"),
    path("consumption", billing.ConsumptionViewSet.as_view({"get": "list"}), name="consumption"),
    path("prices", billing.PriceListViewSet.as_view({"get": "list"}), name="prices"),
    path("statements", billing.StatementViewSet.as_view({"get": "list"}), name="statements"),
    path("statements/<str:month>.csv", billing.StatementViewSet.as_view({"get": "csv"}), name="statement-csv"),
    path("statements/<str:month>", billing.StatementViewSet.as_view({"get": "retrieve"}), name="statement"),
    *router.urls,
]
