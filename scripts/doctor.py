#!/usr/bin/python3
"""`make doctor`: is this machine ready for the labs? Each check says what to fix."""
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
problems = 0


def report(ok, what, fix=""):
    global problems
    print(f"  [{'ok' if ok else 'FIX'}] {what}" + ("" if ok else f"\n        -> {fix}"))
    problems += 0 if ok else 1


def tool(name, fix):
    report(shutil.which(name) is not None, f"{name} found", fix)


def packages():
    script = os.path.join(ROOT, "scripts", "deps.sh")
    pkgs = []
    for line in open(script):
        if line.startswith("  ") and not line.strip().startswith(("#", ")")) and "=" not in line:
            pkgs += line.split()
        if line.startswith(")"):
            break
    missing = [p for p in pkgs if subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", p],
                                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout != "installed"]
    report(not missing, "Debian packages installed" + (f" (missing: {' '.join(missing)})" if missing else ""),
           "run `make deps` (as root, or with sudo)")


def tsan_works():
    src = "#include <pthread.h>\nstatic int x; static void *f(void *a){(void)a; __atomic_add_fetch(&x,1,__ATOMIC_SEQ_CST); return 0;}\n" \
          "int main(void){pthread_t t; pthread_create(&t,0,f,0); pthread_join(t,0); return x==1?0:1;}\n"
    with tempfile.TemporaryDirectory() as d:
        c, exe = os.path.join(d, "t.c"), os.path.join(d, "t")
        open(c, "w").write(src)
        b = subprocess.run(["gcc", "-fsanitize=thread", "-pthread", c, "-o", exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if b.returncode != 0:
            report(False, "ThreadSanitizer builds", "install gcc's libtsan (Debian: libtsan2, pulled in by build-essential): " + b.stdout[-200:])
            return
        r = subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        report(r.returncode == 0, "ThreadSanitizer runs",
               "TSan failed to start (" + r.stdout.strip()[-160:] + "); on kernels with high ASLR entropy try "
               "`sudo sysctl vm.mmap_rnd_bits=28`")


def libfuzzer_works():
    """The fuzz variant (`make fuzz`, and the fuzz smoke of `make test`) needs clang 14 with its
    runtime, which holds libFuzzer."""
    src = "#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n" \
          "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n){(void)d; (void)n; return 0;}\n"
    with tempfile.TemporaryDirectory() as d:
        c, exe = os.path.join(d, "f.c"), os.path.join(d, "f")
        open(c, "w").write(src)
        try:
            b = subprocess.run(["clang-14", "-fsanitize=fuzzer,address,undefined", c, "-o", exe],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except FileNotFoundError:
            report(False, "clang-14 with libFuzzer", "run `make deps` (Debian: clang-14 libclang-rt-14-dev)")
            return
        if b.returncode != 0:
            report(False, "clang-14 with libFuzzer", "install libclang-rt-14-dev (`make deps`): " + b.stdout[-200:])
            return
        r = subprocess.run([exe, "-runs=10"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        report(r.returncode == 0, "libFuzzer runs", r.stdout.strip()[-200:])


def ports():
    try:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.close()
        report(True, "loopback sockets can bind")
    except OSError as e:
        report(False, "loopback sockets can bind", f"{e}: the tests need 127.0.0.1")
    for port in (8080, 9001):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            report(True, f"port {port} free (used by `make run`)")
        except OSError:
            report(False, f"port {port} free (used by `make run`)", f"stop what listens on {port} (`ss -ltnp 'sport = :{port}'`); the tests themselves use free ports")
        finally:
            s.close()


def limits():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    report(hard >= 4096, f"open-files limit: soft {soft}, hard {hard}", "raise it: `ulimit -n 8192` (hard limit in /etc/security/limits.conf)")


def main():
    print("doctor: checking this machine for the labs")
    report(platform.system() == "Linux", f"Linux ({platform.system()} {platform.release()})",
           "the labs need Linux (WSL2 counts): SO_REUSEPORT load spreading and ThreadSanitizer")
    for t, fix in (("gcc", "apt-get install build-essential"), ("make", "apt-get install make"),
                   ("pkg-config", "apt-get install pkg-config"), ("git", "apt-get install git")):
        tool(t, fix)
    report(os.path.exists("/usr/bin/python3"), "Debian's /usr/bin/python3", "apt-get install python3")
    r = subprocess.run(["/usr/bin/python3", "-c", "import pytest"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report(r.returncode == 0, "pytest importable by /usr/bin/python3", "apt-get install python3-pytest (PyPI is not needed)")
    packages()
    tsan_works()
    libfuzzer_works()
    ports()
    limits()
    print(f"doctor: {'all good' if problems == 0 else f'{problems} thing(s) to fix'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
