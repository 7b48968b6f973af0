#!/usr/bin/python3
"""`make run`: starts the most complete gateway present on its demo config, with demo
backends on the backend addresses that config names, and says how to try it. Backends of
upstreams that an http listener uses speak HTTP/1.1 (keep-alive; they answer with a JSON
document naming themselves and echoing the request); the others are echo servers that
first say which backend they are.
Ctrl-C stops everything (the gateway drains first)."""
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def echo_server(host, port):
    srv = socket.create_server((host, port), reuse_port=False)

    def serve(conn):
        with conn:
            try:
                conn.sendall(f"[backend {host}:{port}] ".encode())
                while True:
                    data = conn.recv(65536)
                    if not data:
                        conn.shutdown(socket.SHUT_WR)
                        return
                    conn.sendall(data)
            except OSError:
                return  # the client went away (reset): nothing to do

    def loop():
        while True:
            c, _ = srv.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def http_server(host, port):
    import http.server
    import json

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the gateway's pool is used

        def answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            doc = {"backend": f"{host}:{port}", "method": self.command, "path": self.path,
                   "headers": dict(self.headers.items()), "body_bytes": len(body)}
            out = (json.dumps(doc, indent=1) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = answer

        def log_message(self, fmt, *args):
            pass

    srv = http.server.ThreadingHTTPServer((host, port), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def http_upstreams(cfg_path):
    """Names of the upstreams the config's http routes use (from `upstream: NAME` lines
    inside an http listener's block). A rough reading, good enough for the demo file."""
    names, in_http = set(), False
    for line in open(cfg_path):
        if re.match(r"^\s*- name:", line) and re.match(r"^  - ", line):
            in_http = False
        if re.search(r"protocol:\s*http", line):
            in_http = True
        if re.match(r"^upstreams:", line):
            break
        m = re.search(r"upstream:\s*([A-Za-z0-9_-]+)", line)
        if in_http and m:
            names.add(m.group(1))
    return names


def backend_addresses(cfg_path):
    """Backend addresses of the demo config: every `address:` line below `upstreams:`, with
    the name of the upstream it belongs to."""
    out, in_upstreams, upstream = [], False, None
    for line in open(cfg_path):
        if re.match(r"^upstreams:", line):
            in_upstreams = True
        elif re.match(r"^\S", line):
            in_upstreams = False
        u = re.match(r"^  ([A-Za-z0-9_-]+):", line)
        if in_upstreams and u:
            upstream = u.group(1)
        m = re.search(r"address:\s*([\d.]+):(\d+)", line)
        if in_upstreams and m:
            out.append((m.group(1), int(m.group(2)), upstream))
    return out


def main():
    # The most complete milestone that can run: a milestone under construction may not have
    # a binary or a demo yet.
    ms = [m for m in sorted(glob.glob(os.path.join(ROOT, "milestones", "[0-9][0-9]-*")))
          if os.path.exists(os.path.join(m, "main.c")) and os.path.exists(os.path.join(m, "demo.yaml"))][-1]
    num = os.path.basename(ms)[:2]
    binary = os.path.join(ROOT, "build", "bin", f"gw{num}")
    cfg = os.path.join(ms, "demo.yaml")
    http_names = http_upstreams(cfg)
    for host, port, upstream in backend_addresses(cfg):
        kind = "http" if upstream in http_names else "echo"
        try:
            (http_server if kind == "http" else echo_server)(host, port)
        except OSError as e:
            sys.exit(f"demo: cannot start the {kind} backend on {host}:{port}: {e}")
        print(f"demo: {kind} backend on {host}:{port} (upstream {upstream})")
    print(f"demo: starting {os.path.relpath(binary, ROOT)} -c {os.path.relpath(cfg, ROOT)}")
    print("demo: try it from another terminal (more in the comments of the demo config):")
    if http_names:
        print("        curl -si http://127.0.0.1:8080/api/hello")
    else:
        print("        printf 'hello\\n' | nc -q1 127.0.0.1 8080")
        print("      or, without netcat:")
        print("        python3 -c \"import socket;s=socket.create_connection(('127.0.0.1',8080));"
              "s.sendall(b'hello\\n');s.shutdown(1);print(s.recv(100))\"")
    print("demo: Ctrl-C to stop (the gateway drains, then exits)\n", flush=True)
    gw = subprocess.Popen([binary, "-c", cfg])
    signal.signal(signal.SIGINT, lambda *a: gw.send_signal(signal.SIGTERM))
    signal.signal(signal.SIGTERM, lambda *a: gw.send_signal(signal.SIGTERM))
    sys.exit(gw.wait())


if __name__ == "__main__":
    main()
