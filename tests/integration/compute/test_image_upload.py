"""Image upload through the API: real files, format detected by qemu-img, nothing kept from a
refused upload."""

import hashlib
import shutil
import subprocess

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.compute.models import Image

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def qcow2(tmp_path):
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (Debian qemu-utils; `make test` installs it)")
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(path), "3G"], check=True, capture_output=True)
    return path


def upload(client, path, **fields):
    data = {"name": "my-image", "file": SimpleUploadedFile("innocent.raw", path.read_bytes()), **fields}
    return client.post("/api/v1/images", data, format="multipart")


def test_upload_detects_qcow2_and_verifies_the_checksum(api, a_owner, b_owner, qcow2, settings, tmp_path):
    settings.PORTAL_LIBVIRT_DIR = tmp_path / "store"
    client = api(a_owner)
    sha = hashlib.sha256(qcow2.read_bytes()).hexdigest()
    response = upload(client, qcow2, checksum_sha256=sha, os_distro="debian")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["disk_format"], body["checksum_sha256"], body["min_disk_gb"], body["visibility"]) == (
        "qcow2", sha, 3, "private")  # detected from the content, not from the ".raw" name
    assert api(b_owner).get(f"/api/v1/images/{body['id']}").status_code == 404
    download = client.get(f"/api/v1/images/{body['id']}/download")
    assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == sha
    assert client.delete(f"/api/v1/images/{body['id']}").status_code == 204
    assert client.get(f"/api/v1/images/{body['id']}").status_code == 404


def test_refused_uploads_leave_nothing(api, a_owner, qcow2, settings, tmp_path):
    settings.PORTAL_LIBVIRT_DIR = tmp_path / "store"
    client = api(a_owner)
    bad_sum = upload(client, qcow2, checksum_sha256="0" * 64)
    assert bad_sum.status_code == 400 and "checksum_sha256" in bad_sum.json()["fields"]
    settings.PORTAL_IMAGE_MAX_MB = 0
    too_big = upload(client, qcow2)
    assert too_big.status_code == 400 and "limit" in too_big.json()["message"]
    settings.PORTAL_IMAGE_MAX_MB = 100
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b", str(qcow2), "-F", "qcow2", str(overlay)],
                   check=True, capture_output=True)
    backed = upload(client, overlay)
    assert backed.status_code == 400 and "backing file" in backed.json()["message"]
    assert not Image.objects.exists()
    store = tmp_path / "store" / "images"
    assert not store.exists() or list(store.iterdir()) == []


def test_an_uploaded_disk_image_needs_a_flavor_with_its_disk(api, a_owner, qcow2, settings, tmp_path):
    """The image's virtual size sets its minimum disk; a flavor without that much root disk is a
    clear 400 on the flavor, and nothing is made."""
    from apps.compute.models import Instance
    from tests.factories.compute import make_inventory

    settings.PORTAL_LIBVIRT_DIR = tmp_path / "store"
    settings.PORTAL_COMPUTE_DRIVER = "apps.compute.drivers.fake.FakeDriver"
    settings.PORTAL_ALLOW_FAKE_DRIVERS = True
    make_inventory()
    client = api(a_owner)
    image = upload(client, qcow2).json()
    assert image["min_disk_gb"] == 3
    response = client.post("/api/v1/instances", {"name": "vm", "flavor": "t1.nano", "image": image["id"]})
    assert response.status_code == 400, response.json()
    assert response.json()["message"] == "my-image needs a 3 GB disk; t1.nano has 0."
    assert "flavor" in response.json()["fields"]
    assert not Instance.objects.exists()


@pytest.fixture
def image_server(tmp_path, qcow2):
    """A local HTTP server (loopback only) serving the qcow2 file."""
    import functools
    import http.server
    import threading

    (tmp_path / "www").mkdir()
    shutil.copy(qcow2, tmp_path / "www" / "disk.qcow2")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_import_from_an_allowed_url(api, a_owner, image_server, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.PORTAL_LIBVIRT_DIR = tmp_path / "store"
    client = api(a_owner)
    settings.PORTAL_IMAGE_IMPORT_ALLOWED = []
    assert client.post("/api/v1/images/import", {"name": "x", "url": image_server + "disk.qcow2"}).status_code == 409
    settings.PORTAL_IMAGE_IMPORT_ALLOWED = [image_server]
    refused = client.post("/api/v1/images/import", {"name": "x", "url": "http://127.0.0.2/disk.qcow2"})
    assert refused.status_code == 400 and "url" in refused.json()["fields"]
    with django_capture_on_commit_callbacks(execute=True):
        queued = client.post("/api/v1/images/import", {"name": "imported", "url": image_server + "disk.qcow2"})
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    image = client.get(f"/api/v1/images/{queued.json()['id']}").json()
    assert (image["status"], image["disk_format"], image["min_disk_gb"]) == ("active", "qcow2", 3)
    operation = client.get(f"/api/v1/operations?resource_id={image['id']}").json()["results"][0]
    assert (operation["status"], operation["progress"]) == ("succeeded", 100)

    with django_capture_on_commit_callbacks(execute=True):
        missing = client.post("/api/v1/images/import", {"name": "gone", "url": image_server + "nope.qcow2"}).json()
    failed = client.get(f"/api/v1/images/{missing['id']}").json()
    assert failed["status"] == "error" and "404" in failed["description"]
