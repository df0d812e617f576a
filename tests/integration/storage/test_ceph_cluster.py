"""The throwaway Ceph cluster does what block storage will need, as client.portal (profile rbd
on one pool, not admin): a layered image, data written and read back, a protected snapshot, a
clone of it that reads the parent's data. Everything made here is removed, even on failure."""

import secrets

import pytest

pytestmark = [pytest.mark.ceph, pytest.mark.integration]

MiB = 1 << 20
CONNECT_TIMEOUT = 10  # seconds


def _remove_image(rbd, ioctx, name: str) -> None:
    """Remove image NAME and its snapshots (unprotecting them); gone already is fine."""
    try:
        with rbd.Image(ioctx, name) as image:
            for snap in list(image.list_snaps()):
                if image.is_protected_snap(snap["name"]):
                    image.unprotect_snap(snap["name"])
                image.remove_snap(snap["name"])
    except rbd.ImageNotFound:
        return
    rbd.RBD().remove(ioctx, name)


def test_portal_client_creates_snapshots_and_clones_an_image(ceph_cluster):
    import rados
    import rbd

    name = f"test-{secrets.token_hex(4)}"
    clone_name = f"{name}-clone"
    data = secrets.token_bytes(MiB)
    cluster = rados.Rados(
        conffile=ceph_cluster.conf, name=f"client.{ceph_cluster.user}", conf={"keyring": ceph_cluster.keyring}
    )
    cluster.connect(timeout=CONNECT_TIMEOUT)
    try:
        ioctx = cluster.open_ioctx(ceph_cluster.pool)
        try:
            # given: a 64 MiB image with layering and 1 MiB of data at its start
            rbd.RBD().create(ioctx, name, 64 * MiB, old_format=False, features=rbd.RBD_FEATURE_LAYERING)
            with rbd.Image(ioctx, name) as image:
                assert image.size() == 64 * MiB
                assert image.features() & rbd.RBD_FEATURE_LAYERING
                assert image.write(data, 0) == MiB
                assert image.read(0, MiB) == data

                # when: it is snapshotted, the snapshot protected and cloned
                image.create_snap("base")
                image.protect_snap("base")
                assert image.is_protected_snap("base")
                assert [snap["name"] for snap in image.list_snaps()] == ["base"]
            rbd.RBD().clone(ioctx, name, "base", ioctx, clone_name, features=rbd.RBD_FEATURE_LAYERING)

            # then: the clone has the parent's size and reads the parent's data
            with rbd.Image(ioctx, clone_name) as clone:
                parent = clone.get_parent_image_spec()
                assert parent["pool_name"] == ceph_cluster.pool
                assert (parent["image_name"], parent["snap_name"]) == (name, "base")
                assert clone.size() == 64 * MiB
                assert clone.read(0, MiB) == data
                assert clone.read(MiB, 16) == bytes(16)  # never written: zeros

            # and: removing the clone, then the image, leaves nothing of ours behind
            _remove_image(rbd, ioctx, clone_name)
            _remove_image(rbd, ioctx, name)
            assert not {name, clone_name} & set(rbd.RBD().list(ioctx))
        finally:
            for leftover in (clone_name, name):  # the clone first: it pins the parent's snapshot
                _remove_image(rbd, ioctx, leftover)
            ioctx.close()
    finally:
        cluster.shutdown()
