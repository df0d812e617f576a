import pytest

from apps.network import services


@pytest.fixture
def net(owner):
    """A VPC "prod" 10.8.0.0/16 with subnets "web" 10.8.1.0/24 and "app" 10.8.2.0/24 of the
    test module's `owner`."""
    vpc = services.create_vpc(owner, name="prod", cidr="10.8.0.0/16")
    web = services.create_subnet(owner, vpc=vpc, name="web", cidr="10.8.1.0/24")
    app = services.create_subnet(owner, vpc=vpc, name="app", cidr="10.8.2.0/24")
    return vpc, web, app
