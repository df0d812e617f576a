"""Areas, named policies and roles.

An area is a part of the product (iam, compute, network, storage, billing, ...); each app
registers its area when it loads. A policy grants `read` or `full` access to areas, named as
public clouds name them: AdministratorAccess, PowerUserAccess, ReadOnlyAccess and, per area,
`<Area>FullAccess` / `<Area>ReadOnlyAccess`. A role is a set of policies; a membership may add
policies on top of its role. Single resources are granted with django-guardian object
permissions (see apps.core.permissions)."""

from dataclasses import dataclass

READ = "read"
FULL = "full"
ALL_AREAS = "*"

# Roles of a membership, strongest first.
OWNER, ADMIN, MEMBER, READONLY = "owner", "admin", "member", "readonly"
ROLE_CHOICES = [
    (OWNER, "Owner"),
    (ADMIN, "Administrator"),
    (MEMBER, "Member"),
    (READONLY, "Read-only"),
]


@dataclass(frozen=True)
class Area:
    name: str
    label: str


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    # area name (or ALL_AREAS) -> READ or FULL
    grants: tuple[tuple[str, str], ...]

    def level(self, area: str) -> str | None:
        """A grant naming the area wins over the policy's wildcard grant."""
        grants = dict(self.grants)
        return grants.get(area, grants.get(ALL_AREAS))


_areas: dict[str, Area] = {}

BUILTIN_POLICIES = {
    "AdministratorAccess": Policy("AdministratorAccess", "Full access to every area.", ((ALL_AREAS, FULL),)),
    "PowerUserAccess": Policy(
        "PowerUserAccess",
        "Full access to every area except identity and access, which it can read.",
        ((ALL_AREAS, FULL), ("iam", READ)),
    ),
    "ReadOnlyAccess": Policy("ReadOnlyAccess", "Read every area, change nothing.", ((ALL_AREAS, READ),)),
}

ROLE_POLICIES = {
    OWNER: ("AdministratorAccess",),
    ADMIN: ("AdministratorAccess",),
    MEMBER: ("PowerUserAccess",),
    READONLY: ("ReadOnlyAccess",),
}


def register_area(name: str, label: str) -> Area:
    """Called from an app's AppConfig.ready(); registering the same area again is a no-op."""
    area = _areas.setdefault(name, Area(name, label))
    if area.label != label:
        raise ValueError(f"area {name!r} already registered as {area.label!r}")
    return area


def areas() -> list[Area]:
    return sorted(_areas.values(), key=lambda a: a.name)


def _area_policy_name(area: Area, level: str) -> str:
    camel = "".join(part.capitalize() for part in area.name.split("_"))
    if area.name == "iam":
        camel = "IAM"
    return f"{camel}{'FullAccess' if level == FULL else 'ReadOnlyAccess'}"


def policies() -> dict[str, Policy]:
    """Every named policy: the built-in ones and two per registered area."""
    result = dict(BUILTIN_POLICIES)
    for area in areas():
        for level in (FULL, READ):
            name = _area_policy_name(area, level)
            verb = "Full access to" if level == FULL else "Read access to"
            result[name] = Policy(name, f"{verb} {area.label}.", ((area.name, level),))
    return result


def level_for(policy_names: frozenset[str], area: str) -> str | None:
    """The strongest level the named policies give on `area` (None: no access)."""
    known = policies()
    levels = {known[name].level(area) for name in policy_names if name in known}
    if FULL in levels:
        return FULL
    return READ if READ in levels else None


def is_read_action(action: str) -> bool:
    return action == "view"
