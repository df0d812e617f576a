"""Content checks of the storage contract (tests/contracts/storage_driver.py) on real backends:
64 KiB at offset 0, written and compared with the backend's own tools."""

import subprocess

from apps.storage.drivers.dirpool import DirPoolDriver
from apps.storage.drivers.rbd import RbdDriver


class QemuIoProbe:
    """Content checks with qemu-io on the pool's files (64 KiB at offset 0)."""

    def __init__(self, driver: DirPoolDriver):
        self.driver = driver

    def _path(self, name: str) -> str:
        return self.driver.disk_source(name).path

    def write(self, name: str, byte: int) -> None:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {byte} 0 64k", self._path(name)], check=True,
                       capture_output=True)

    def holds(self, name: str, byte: int) -> bool:
        done = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-U", "-c", f"read -P {byte} 0 64k", self._path(name)],
                              capture_output=True, text=True)
        return done.returncode == 0 and "verification failed" not in done.stdout


class RbdProbe:
    """Content checks with librbd (64 KiB at offset 0)."""

    def __init__(self, driver: RbdDriver):
        self.driver = driver

    def _with_image(self, name: str, fn):
        return self.driver._run(lambda rbd, ioctx: _use(rbd, ioctx, name, fn))

    def write(self, name: str, byte: int) -> None:
        self._with_image(name, lambda image: image.write(bytes([byte]) * 65536, 0))

    def holds(self, name: str, byte: int) -> bool:
        return self._with_image(name, lambda image: image.read(0, 65536) == bytes([byte]) * 65536)


def _use(rbd, ioctx, name, fn):
    with rbd.Image(ioctx, name) as image:
        return fn(image)

