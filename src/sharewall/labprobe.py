"""A tiny traffic tool for lab namespaces (``python -m sharewall.labprobe ...``), used by the demo and tests.

Servers answer every TCP connection / UDP datagram with "<tag> <peer-ip>" so a test sees both who
answered and which source address arrived (NAT visible). Clients print the answer, or "timeout" /
"refused" and exit 1. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading


def serve_tcp(port: int, tag: str, bind: str) -> None:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind, port))
    srv.listen(128)
    print("ready", flush=True)
    while True:
        conn, peer = srv.accept()
        threading.Thread(target=_answer, args=(conn, peer, tag), daemon=True).start()


def _answer(conn: socket.socket, peer: tuple[str, int], tag: str) -> None:
    with conn:
        try:
            conn.sendall(f"{tag} {peer[0]}\n".encode())
        except OSError:
            pass


def serve_udp(port: int, tag: str, bind: str) -> None:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_DGRAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind, port))
    print("ready", flush=True)
    while True:
        _, peer = srv.recvfrom(2048)
        srv.sendto(f"{tag} {peer[0]}\n".encode(), peer)


def tcp(host: str, port: int, timeout: float) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        data = s.recv(200)
    except TimeoutError:
        print("timeout")
        return 1
    except ConnectionRefusedError:
        print("refused")
        return 1
    except OSError as err:
        print(f"error {err.errno}")
        return 1
    finally:
        s.close()
    print(data.decode().strip())
    return 0


def udp(host: str, port: int, timeout: float, src_port: int) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    if src_port:
        s.bind(("", src_port))
    s.settimeout(timeout)
    try:
        s.sendto(b"probe", (host, port))
        data, _ = s.recvfrom(200)
    except TimeoutError:
        print("timeout")
        return 1
    except ConnectionRefusedError:
        print("refused")
        return 1
    finally:
        s.close()
    print(data.decode().strip())
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("serve-tcp", "serve-udp"):
        p = sub.add_parser(name)
        p.add_argument("port", type=int)
        p.add_argument("--tag", default="server")
        p.add_argument("--bind", default="0.0.0.0")
    for name in ("tcp", "udp"):
        p = sub.add_parser(name)
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.add_argument("--timeout", type=float, default=1.5)
        p.add_argument("--src-port", type=int, default=0)
    args = parser.parse_args()
    if args.cmd == "serve-tcp":
        serve_tcp(args.port, args.tag, args.bind)
    elif args.cmd == "serve-udp":
        serve_udp(args.port, args.tag, args.bind)
    elif args.cmd == "tcp":
        return tcp(args.host, args.port, args.timeout)
    elif args.cmd == "udp":
        return udp(args.host, args.port, args.timeout, args.src_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
