"""dnsmasq's ``dhcp-script``: forward one lease change to sharewalld as one JSON datagram.

Run by dnsmasq (through the wrapper ``sharewall.backends.dnsmasq.write_dhcp_script`` generates) as::

    python -I -S dhcp_event.py SOCKET_PATH ACTION MAC IP [HOSTNAME]

where ACTION is ``add``, ``old`` or ``del`` (dnsmasq(8), ``--dhcp-script``). It sends
``{"event", "mac", "ip", "hostname", "interface", "expires_at"}`` to the Unix datagram socket at
SOCKET_PATH (``interface`` and ``expires_at`` come from dnsmasq's ``DNSMASQ_INTERFACE`` and
``DNSMASQ_LEASE_EXPIRES``); ``sharewall.model.dhcp.parse_lease_event`` reads it.

Promises: standard library only, and it never imports sharewall (it runs with ``-I -S`` for a fast,
environment-proof start, as root, once per lease change). It always exits 0: if sharewalld is not
listening the event is dropped, because the lease file stays the source of truth and dnsmasq
re-announces every lease as ``old`` on SIGHUP. Other actions (``init``, ``tftp``, ``arp-add``...)
are ignored.
"""

from __future__ import annotations

import json
import os
import socket
import sys

LEASE_ACTIONS = frozenset({"add", "old", "del"})
SEND_TIMEOUT_S = 1.0


def build_event(argv: list[str], env: dict[str, str]) -> bytes | None:
    """The datagram for one invocation (argv without the program and socket), or None to ignore."""
    if len(argv) < 3 or argv[0] not in LEASE_ACTIONS:
        return None
    action, mac, ip = argv[0], argv[1], argv[2]
    hostname = argv[3] if len(argv) > 3 and argv[3] else None
    expires_text = env.get("DNSMASQ_LEASE_EXPIRES", "")
    expires_at = int(expires_text) if expires_text.isdigit() and int(expires_text) > 0 else None
    event = {
        "event": action,
        "mac": mac,
        "ip": ip,
        "hostname": hostname,
        "interface": env.get("DNSMASQ_INTERFACE") or None,
        "expires_at": expires_at,
    }
    return json.dumps(event, separators=(",", ":")).encode()


def send_event(socket_path: str, payload: bytes) -> bool:
    """Send *payload* to the receiver; False (never an exception) if nobody is listening."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.sendto(payload, socket_path)
    except OSError as exc:
        print(f"sharewall dhcp-event: not delivered to {socket_path}: {exc}", file=sys.stderr)
        return False
    return True


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: dhcp_event.py SOCKET_PATH ACTION MAC IP [HOSTNAME]", file=sys.stderr)
        return 0
    payload = build_event(argv[2:], dict(os.environ))
    if payload is not None:
        send_event(argv[1], payload)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
