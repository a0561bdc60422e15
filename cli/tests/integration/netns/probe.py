"""A TCP probe for the network-namespace tests (Python 3 standard library).

    probe.py serve PORT...      listen on every PORT (IPv4 and IPv6); print
                                "ready"; answer each connection with one
                                line, "<port it reached> <original destination
                                or none>", then close
    probe.py connect HOST PORT  print the line the server answered, or
                                "error <errno name>"
"""

import errno
import selectors
import socket
import struct
import sys

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h; IP6T_SO_ORIGINAL_DST is 80 too


def original_destination(conn: socket.socket) -> str:
    try:
        if conn.family == socket.AF_INET:
            raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, addr = struct.unpack("!2xH4s8x", raw)
            return f"{socket.inet_ntop(socket.AF_INET, addr)}:{port}"
        raw = conn.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
        port, addr = struct.unpack("!2xH4x16s4x", raw)
        return f"[{socket.inet_ntop(socket.AF_INET6, addr)}]:{port}"
    except OSError:
        # No conntrack NAT entry: the connection was not redirected.
        return "none"


def serve(ports):
    sel = selectors.DefaultSelector()
    for port in ports:
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            s.listen(64)
            sel.register(s, selectors.EVENT_READ, port)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            conn, _ = key.fileobj.accept()
            orig = original_destination(conn)
            # An unredirected connection's original destination is its own
            # local address: report that as "none" too.
            local = conn.getsockname()
            if conn.family == socket.AF_INET:
                own = f"{local[0]}:{local[1]}"
            else:
                own = f"[{local[0]}]:{local[1]}"
            if orig == own:
                orig = "none"
            try:
                conn.sendall(f"{key.data} {orig}\n".encode())
            finally:
                conn.close()


def connect(host, port):
    try:
        with socket.create_connection((host, int(port)), timeout=5) as c:
            data = b""
            while not data.endswith(b"\n"):
                chunk = c.recv(256)
                if not chunk:
                    break
                data += chunk
            print(data.decode().strip())
    except OSError as e:
        print("error", errno.errorcode.get(e.errno, str(e)))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve([int(p) for p in sys.argv[2:]])
    else:
        connect(sys.argv[2], sys.argv[3])
