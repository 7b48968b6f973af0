#!/usr/bin/python3
"""`make run`: starts the most complete gateway present on its demo config, with demo
backends (echo servers that first say which backend they are) on the backend addresses
that config names, and says how to try it.
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


def backend_addresses(cfg_path):
    """Backend addresses of the demo config: every `address:` line below `upstreams:`."""
    out, in_upstreams = [], False
    for line in open(cfg_path):
        if re.match(r"^upstreams:", line):
            in_upstreams = True
        elif re.match(r"^\S", line):
            in_upstreams = False
        m = re.search(r"address:\s*([\d.]+):(\d+)", line)
        if in_upstreams and m:
            out.append((m.group(1), int(m.group(2))))
    return out


def main():
    # The most complete milestone that can run: a milestone under construction may not have
    # a binary or a demo yet.
    ms = [m for m in sorted(glob.glob(os.path.join(ROOT, "milestones", "[0-9][0-9]-*")))
          if os.path.exists(os.path.join(m, "main.c")) and os.path.exists(os.path.join(m, "demo.yaml"))][-1]
    num = os.path.basename(ms)[:2]
    binary = os.path.join(ROOT, "build", "bin", f"gw{num}")
    cfg = os.path.join(ms, "demo.yaml")
    for host, port in backend_addresses(cfg):
        try:
            echo_server(host, port)
        except OSError as e:
            sys.exit(f"demo: cannot start the echo backend on {host}:{port}: {e}")
        print(f"demo: echo backend on {host}:{port}")
    print(f"demo: starting {os.path.relpath(binary, ROOT)} -c {os.path.relpath(cfg, ROOT)}")
    print("demo: try it from another terminal:")
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
