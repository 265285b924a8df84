"""Read and write ``net.*`` sysctls through ``/proc/sys/net``.

Promise: only keys under ``net/`` are reachable (no ``..``, no other subtree), and each call acts on the
network namespace of the *calling thread*: ``/proc/sys/net`` resolves to the namespace of the thread that
opens it (stack.md §2). The daemon runs inside its namespace, or calls these from a thread that has
``setns()``'d into it.
"""

from __future__ import annotations

import os
import re

from sharewall.errors import KernelError, ValidationError

__all__ = ["read_sysctl", "sysctl_path", "write_sysctl"]

PROC_SYS = "/proc/sys"
# Path components the kernel uses for net sysctls: words, numbers, interface names (which may hold
# '.', '-', '@', ':', and more). '/' and NUL cannot occur in a component; '.' and '..' are refused.
_COMPONENT = re.compile(r"[^/\x00\s]{1,64}")
MAX_VALUE_BYTES = 4096


def sysctl_path(key: str) -> str:
    """The ``/proc/sys`` path of a ``net`` sysctl key.

    Accepts ``net/ipv4/ip_forward`` or the sysctl(8) dotted form ``net.ipv4.ip_forward``; in the dotted
    form a '/' stands for a '.' inside a component (``net.ipv4.conf.eth0/10.forwarding``), as sysctl(8)
    does it.

    Raises:
        ValidationError: the key is not under ``net/``, or contains ``..`` or an empty component.
    """
    if ".." in key:
        raise ValidationError(f"sysctl key {key!r} must not contain '..'")
    if key.startswith("net."):
        # sysctl(8) convention: swap the two separators.
        components = [part.replace("/", ".") for part in key.split(".")]
    elif key.startswith("net/"):
        components = key.split("/")
    else:
        raise ValidationError(f"sysctl key {key!r} is not under net/")
    if len(components) < 2 or not all(
        _COMPONENT.fullmatch(part) and part != "." for part in components
    ):
        raise ValidationError(f"invalid sysctl key {key!r}")
    return os.path.join(PROC_SYS, *components)


def read_sysctl(key: str) -> str:
    """The current value, without the trailing newline.

    Raises:
        ValidationError: bad key (see ``sysctl_path``).
        KernelError: the key does not exist here or cannot be read.
    """
    path = sysctl_path(key)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\n")
    except OSError as exc:
        raise KernelError(f"cannot read sysctl {key}: {exc.strerror or exc}") from exc


def write_sysctl(key: str, value: str | int) -> None:
    """Set a value, in one ``write()`` as the kernel expects.

    Raises:
        ValidationError: bad key, or a value with a newline or NUL inside, or too long.
        KernelError: the key does not exist here, or the kernel refused the value.
    """
    path = sysctl_path(key)
    if isinstance(value, bool):  # bool is an int; str(True) would be "True"
        value = int(value)
    text = str(value)
    if "\n" in text or "\0" in text or len(text.encode()) > MAX_VALUE_BYTES:
        raise ValidationError(f"invalid value for sysctl {key}: {text!r}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError(f"cannot open sysctl {key}: {exc.strerror or exc}") from exc
    try:
        os.write(fd, text.encode() + b"\n")
    except OSError as exc:
        raise KernelError(f"sysctl {key} refused {text!r}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
