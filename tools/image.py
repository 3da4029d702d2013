"""``make image`` (``python -m tools.image``): build the CPU image ``tabular-gpu-pipeline:cpu``
from ``Dockerfile.gpu`` with buildah, into the local container storage, with no Docker engine and
no container registry.

* The base image is a Debian made here with mmdebstrap (the release whose python3 is the one the
  project is developed with) and imported with ``podman import``; it is made once, and kept as a
  tarball under ``.image/`` and as an image in the local storage.
* torch is the CPU wheel that pip resolves on this machine (its find-links, else PyTorch's CPU
  index), fetched once into ``.image/wheels`` and mounted into the build; ``Dockerfile.gpu`` takes
  it through its ``TORCH_SPEC`` build argument, so the same file builds the CUDA image.
* ``buildah bud --layers`` reuses every layer up to the first changed one: a code change
  reinstalls no dependency.
* The OCI runtime is runc (crun fails on hybrid cgroup hierarchies), set in a ``containers.conf``
  under ``.image/`` that ``CONTAINERS_CONF`` points buildah and podman at (``container_env``), so
  the host's ``/etc/containers`` stays untouched.

Missing tools (buildah, podman, runc, mmdebstrap) are installed with apt-get when running as
root, as CI does on a clean Debian machine."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".image"
IMAGE = "localhost/tabular-gpu-pipeline:cpu"
BASE_IMAGE = "localhost/tabular-gpu-pipeline-base:bookworm"
# Debian 12's python3 is 3.11: the version the project is developed and tested with here.
SUITE = "bookworm"
SUITE_PYTHON = "3.11"
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
TORCH_CPU = "torch==2.13.0+cpu"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Where torch's own dependencies (and everything else) come from inside the build.
PYPI = "https://pypi.org/simple"
TOOLS = {"buildah": "buildah", "podman": "podman", "runc": "runc", "mmdebstrap": "mmdebstrap"}
PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class ImageError(RuntimeError):
    """A build step that cannot go on; the message says what to do."""


def run(
    command: Sequence[str], stdin: IO[bytes] | None = None, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a command with the project's container configuration; fail on a non-zero exit."""
    print("+", " ".join(command), flush=True)
    return subprocess.run(
        command, stdin=stdin, capture_output=capture, check=True, text=True, env=container_env()
    )


def containers_conf() -> str:
    """runc as the OCI runtime; cgroupfs and a file for podman's events (no systemd here); and
    the container's limits on open files and processes no higher than this process's: without
    CAP_SYS_RESOURCE, the runtime fails to set podman's defaults (over a million open files),
    and here it also refuses more processes than the kernel's ``pid_max``."""
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    _, nproc = resource.getrlimit(resource.RLIMIT_NPROC)
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    limits = [f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"]
    return (
        "# Written by tools/image.py; buildah and podman read it through CONTAINERS_CONF.\n"
        f"[containers]\ndefault_ulimits = {json.dumps(limits)}\n"
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )


def container_env() -> dict[str, str]:
    """The environment under which buildah and podman use the project's ``containers.conf``
    (.image/containers.conf, written here; the host's /etc/containers is left as it is)."""
    conf = WORK / "containers.conf"
    text = containers_conf()
    if not conf.is_file() or conf.read_text() != text:
        WORK.mkdir(exist_ok=True)
        conf.write_text(text)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def ensure_tools() -> None:
    """Install the container tools with apt-get where they are missing (as root only)."""
    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ImageError(f"missing {', '.join(missing)}: apt-get install {' '.join(missing)}")
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt_env)
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    subprocess.run([*install, "uidmap"], check=True, env=apt_env)


def image_exists(name: str) -> bool:
    found = subprocess.run(
        ["podman", "image", "exists", name], env=container_env(), capture_output=True
    )
    return found.returncode == 0


def add_host_certificates(root: Path) -> None:
    """Trust, in the new root, the host's certificates that Debian's bundle lacks (the CA of a
    TLS-inspecting proxy), so that pip reaches its index from inside a build; and let pip trust
    the system store (/etc/pip.conf: by default pip trusts only its own copy of certifi)."""
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    known = set(PEM.findall(bundle.read_text()))
    host = PEM.findall(HOST_CA_BUNDLE.read_text()) if HOST_CA_BUNDLE.is_file() else []
    local = root / "usr/local/share/ca-certificates"
    for index, cert in enumerate(c for c in host if c not in known):
        (local / f"host-{index}.crt").write_text(cert + "\n")
    subprocess.run(["chroot", str(root), "update-ca-certificates"], check=True)
    (root / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")


def ensure_base() -> None:
    """Make the Debian root once (a folder under .image/), and import it once."""
    if image_exists(BASE_IMAGE):
        return
    root = WORK / f"rootfs-{SUITE}"
    done = root.with_suffix(".done")
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        run(
            [
                "mmdebstrap", "--variant=minbase", "--mode=root", "--include=ca-certificates",
                SUITE, str(root), *MIRRORS,
            ]
        )  # fmt: skip
        add_host_certificates(root)
        done.touch()
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    run(["podman", "import", "--quiet", "-", BASE_IMAGE], stdin=tar.stdout)
    if tar.wait() != 0:
        raise ImageError(f"tar of {root} failed")


def torch_wheel(spec: str, index_url: str) -> Path:
    """The CPU wheel of torch for the base's Python, as pip resolves it here (its find-links,
    else ``index_url``), downloaded once into .image/wheels."""
    folder = WORK / "wheels"
    version = spec.partition("==")[2]
    found = sorted(folder.glob(f"torch-{version}-*.whl"))
    if found:
        return found[-1]
    download = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", SUITE_PYTHON, "--dest", str(folder), spec,
    ]  # fmt: skip
    if subprocess.run(download).returncode != 0:
        subprocess.run([*download, "--index-url", index_url], check=True)
    found = sorted(folder.glob(f"torch-{version}-*.whl"))
    if not found:
        raise ImageError(f"pip download {spec} left no torch-{version} wheel in {folder}")
    return found[-1]


def build(tag: str, torch_spec: str, torch_index: str) -> None:
    """buildah bud with layers; torch from the wheel, mounted read-only at /wheels."""
    wheel = torch_wheel(torch_spec, torch_index)
    run(
        [
            "buildah", "bud", "--layers", "--pull=never", "--isolation", "chroot",
            "--file", str(REPO / "Dockerfile.gpu"), "--tag", tag,
            "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
            "--build-arg", f"TORCH_SPEC=/wheels/{wheel.name}",
            "--build-arg", f"TORCH_INDEX_URL={PYPI}",
            "--volume", f"{wheel.parent}:/wheels:ro",
            str(REPO),
        ]
    )  # fmt: skip


def image_size(tag: str) -> int:
    out = run(["podman", "image", "inspect", "--format", "{{.Size}}", tag], capture=True)
    return int(out.stdout.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.image", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tag", default=IMAGE, help="the image to build")
    parser.add_argument("--torch-spec", default=TORCH_CPU, help="pip requirement for torch")
    parser.add_argument(
        "--torch-index-url", default=TORCH_CPU_INDEX, help="where torch is, if not found locally"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        ensure_tools()
        ensure_base()
        build(args.tag, args.torch_spec, args.torch_index_url)
        size = image_size(args.tag)
    except (ImageError, subprocess.CalledProcessError) as error:
        print(f"image failed: {error}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(f"{args.tag}: {size / 1e6:.0f} MB, built in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
