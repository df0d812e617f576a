from django.apps import AppConfig


class NetworkConfig(AppConfig):
    name = "apps.network"
    label = "network"
    verbose_name = "Networks"

    def ready(self):
        from apps.core.nav import register_nav
        from apps.core.policies import register_area
        from apps.tenants.quotas import register_quota

        register_area("network", "Networks")
        register_quota("vpcs", "VPCs", default=5)
        register_quota("subnets", "Subnets", default=50)
        register_quota("ports", "Network interfaces", default=250)
        register_quota("security_groups", "Security groups", default=50)
        register_quota("security_group_rules", "Security group rules", default=1000)
        register_quota("eips", "Elastic IPs", default=5)
        register_quota("nat_gateways", "NAT gateways", default=5)
        register_quota("havips", "HA VIPs", default=10)
        register_quota("load_balancers", "Load balancers", default=5)
        register_nav("network", "VPCs", "vpc-list", area="network")
        register_nav("network", "Security groups", "security-group-list", area="network")
        register_nav("network", "Elastic IPs", "eip-list", area="network")
        register_nav("network", "NAT gateways", "nat-gateway-list", area="network")
        register_nav("network", "Load balancers", "load-balancer-list", area="network")
        register_nav("network", "HA VIPs", "havip-list", area="network")

        from apps.compute.signals import instance_deleted
        from apps.network.services import release_ports

        instance_deleted.connect(release_ports, dispatch_uid="network.release_ports")
