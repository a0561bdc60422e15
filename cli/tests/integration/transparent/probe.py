"""Apps and clients for the transparent-interception tests (Python 3
standard library only).

    probe.py http PORT...         HTTP server on every PORT (IPv4 and IPv6):
                                  answers "port=P xfcc=X path=/p"; prints
                                  "ready" once listening
    probe.py http-local PORT      the same, on 127.0.0.1 only (a debug port)
    probe.py echo PORT            TCP echo server
    probe.py banner PORT          TCP server that speaks first ("hello\n")
    probe.py get HOST PORT HOSTHEADER PATH [NAME:VALUE]
                                  one HTTP/1.1 GET (with one more header);
                                  prints "STATUS BODY" or "error ERRNO"
    probe.py send HOST PORT TEXT  connects, sends TEXT (may be empty), prints
                                  what comes back until the peer closes or
                                  2 s of silence, or "error ERRNO"
"""

import errno
import http.client
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        port = self.server.server_address[1]
        xfcc = self.headers.get("x-forwarded-client-cert", "-")
        body = f"port={port} xfcc={xfcc} path={self.path}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server4(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


class Server6(Server4):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


class Banner(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"hello\n")
        self.request.recv(16)


def serve(handler, ports, local_only=False):
    servers = []
    for port in ports:
        if local_only:
            servers.append(Server4(("127.0.0.1", port), handler))
            continue
        servers.append(Server4(("0.0.0.0", port), handler))
        servers.append(Server6(("::", port), handler))
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def get(host, port, host_header, path, extra=None):
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=5)
        headers = {"Host": host_header}
        if extra:
            name, _, value = extra.partition(":")
            headers[name] = value
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        print(r.status, r.read().decode(errors="replace").strip())
    except OSError as e:
        print("error", errno.errorcode.get(e.errno, type(e).__name__))
    except http.client.HTTPException as e:
        print("error", type(e).__name__)


def send(host, port, text):
    try:
        with socket.create_connection((host, int(port)), timeout=5) as c:
            if text:
                c.sendall(text.encode())
            c.settimeout(2)
            got = b""
            try:
                while True:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                    if text and len(got) >= len(text):
                        break
                    if not text and got.endswith(b"\n"):
                        break
            except socket.timeout:
                pass
            print(got.decode(errors="replace").strip() or "closed")
    except OSError as e:
        print("error", errno.errorcode.get(e.errno, type(e).__name__))


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "http":
        serve(Handler, [int(p) for p in args])
    elif mode == "http-local":
        serve(Handler, [int(args[0])], local_only=True)
    elif mode == "echo":
        serve(Echo, [int(args[0])])
    elif mode == "banner":
        serve(Banner, [int(args[0])])
    elif mode == "get":
        get(*args)
    elif mode == "send":
        send(args[0], args[1], args[2] if len(args) > 2 else "")
