"""The report: from the samples of a run ({scenario: {workers: {target: [result, ...]}}}) to
<name>.md (header, summary of ratios against each peer, the goal lines of issue 7, then one
section per scenario with its table and a gnuplot PNG <name>-<scenario>.png) and
<name>.json (every sample). Figures are medians over the rounds; ratios compare medians
measured in the same run. It measures nothing itself.
"""
import json
import os
import platform
import statistics
import subprocess

from .machine import GIB, MIB, OTHER_LOAD_WARN, BenchError, pin_plan
from .scenarios import (BIG_CHUNK, BIG_CHUNK_BYTES, CHUNK_MAX_S, CONN_PARALLEL, IDLE_PAYLOAD,
                        L7_RPS, RELOAD_CONNS, RELOAD_INTERVAL_S, RELOAD_PLAIN, TINY_CHUNK, TINY_CHUNK_BYTES,
                        TLS_IDLE_CONNS_MAX, TLS_PARALLEL, Bulk, Chain, ConnRate, IdleConns,
                        Reload, TinyChunks, TlsHandshake, UploadPeakRss, Wrk, WrkBig)
from .targets import (TLS_CIPHER, TLS_CURVE, TLS_NGINX_CACHE, TLS_PROTOCOL, TLS_SESSIONS,
                      Direct)

def summarize(values):
    return statistics.median(values), min(values), max(values)


def values(samples, scen, w, tname):
    return [r["value"] for r in samples.get(scen, {}).get(w, {}).get(tname, []) if "value" in r]


def med(samples, scen, w, tname, key="value"):
    vals = [r[key] for r in samples.get(scen, {}).get(w, {}).get(tname, []) if key in r]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "-"


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}×"


def fmt_num(v):
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


def plot(ctx, s, samples, targets, path_png):
    dat = path_png.with_suffix(".dat")
    rows = []
    for t in targets:
        cols = [f'"{t.label}"']
        for w in ctx.workers_list:
            vals = values(samples, s.key, w, t.name)
            cols += [f"{x:.2f}" for x in summarize(vals)] if vals else ["?", "?", "?"]
        rows.append(" ".join(cols))
    dat.write_text("\n".join(rows) + "\n")
    using = ", ".join(
        f"'{dat}' using {2 + 3 * i}:{3 + 3 * i}:{4 + 3 * i}"
        + (":xtic(1)" if i == 0 else "") + f" title 'workers {w}'"
        for i, w in enumerate(ctx.workers_list))
    script = f"""set terminal pngcairo size 900,480 noenhanced font ",10"
set output '{path_png}'
set title "{s.title}\\n({s.unit}, median of {ctx.rounds} round(s); bars: min-max; {ctx.stamp})"
set datafile missing '?'
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.75 border -1
set yrange [0:*]
set xrange [-0.6:{len(targets) - 0.4}]
set ylabel '{s.unit}'
set grid ytics
set key top right
plot {using}
"""
    gp = path_png.with_suffix(".gp")
    gp.write_text(script)
    r = subprocess.run(["gnuplot", str(gp)], capture_output=True, text=True, timeout=60)
    dat.unlink()
    gp.unlink()
    if r.returncode != 0 or not path_png.exists():
        raise BenchError(f"gnuplot failed for {s.key}: {r.stderr.strip()}")


def memory_goals(ctx, scenarios, samples, ours):
    """The goal lines for the memory scenarios (issue 7 states them for L7; at L4 the same
    bounds are checked against the L4 peers)."""
    L = []
    for s in scenarios:
        if isinstance(s, IdleConns) and s.tls:
            L += ["TLS (issue 15): RSS per idle keep-alive TLS connection; the issue expects "
                  "about 37 KB for ours (BearSSL's bidirectional buffers stay attached), what "
                  "each proxy spends is the figure:", ""]
            for w in ctx.workers_list:
                a = med(samples, s.key, w, ours)
                n, h = med(samples, s.key, w, "nginx"), med(samples, s.key, w, "haproxy")
                L.append(f"- workers {w}: ours {fmt_num(a)} B/conn, nginx {fmt_num(n)}, HAProxy "
                         f"{fmt_num(h)}")
            L.append("")
            continue
        if isinstance(s, IdleConns):
            L += ["Goal (issue 7), L7: an idle keep-alive client connection costs no more RSS "
                  "than in nginx (about 0.5 KiB each; HAProxy about 1 KiB):" if s.http else
                  "Goal (issue 7), idle connections: no more RSS per idle connection than nginx "
                  "(the issue's figures, about 0.5 KiB for nginx and 1 KiB for HAProxy, are L7 "
                  "keep-alive ones; here at L4 ours is compared with both peers):", ""]
            for w in ctx.workers_list:
                a = med(samples, s.key, w, ours)
                n, h = med(samples, s.key, w, "nginx"), med(samples, s.key, w, "haproxy")
                if a is None or n is None:
                    verdict = "no figure"
                else:
                    verdict = "met" if a <= n else "NOT met"
                L.append(f"- workers {w}: ours {fmt_num(a)} B/conn, nginx {fmt_num(n)}, HAProxy "
                         f"{fmt_num(h)}: {ratio(a, n)} nginx, {ratio(a, h)} HAProxy: {verdict}")
            L.append("")
        if isinstance(s, UploadPeakRss):
            size = ("" if ctx.bulk_bytes == GIB else
                    f" (this run uploads {ctx.bulk_bytes // MIB} MiB, not 1 GiB: not the goal's "
                    "measurement)")
            L += [f"Goal (issue 7): a 1 GiB upload raises the proxy's peak RSS by less than "
                  f"16 MiB{size} ({'HTTP POST, L7' if s.http else 'L4'}):", ""]
            for w in ctx.workers_list:
                vals = values(samples, s.key, w, ours)
                if not vals:
                    verdict = "no figure"
                else:
                    verdict = "met" if max(vals) < 16 * 1024 else (
                        "NOT met" if statistics.median(vals) >= 16 * 1024 else
                        "median met, but not in every round")
                a = med(samples, s.key, w, ours)
                L.append(f"- workers {w}: ours {fmt_num(a)} KiB (max "
                         f"{fmt_num(max(vals) if vals else None)}); HAProxy "
                         f"{fmt_num(med(samples, s.key, w, 'haproxy'))}, nginx "
                         f"{fmt_num(med(samples, s.key, w, 'nginx'))}: {verdict}")
            L.append("")
    return L


def l7_goals(ctx, scenarios, samples, ours, targets):
    """The L7 speed goal lines: requests/s at least 1.1 × nginx with p99 no worse than
    nginx's, per rps scenario and worker count; and the chain's cost."""
    L = []
    rps = [s for s in scenarios if s.key in L7_RPS]
    if rps:
        L += ["Goal (issue 7), L7: requests/s at least 1.1 × nginx's, with p99 no worse than "
              "nginx's, at workers 1 and 2:", ""]
        for s in rps:
            for w in ctx.workers_list:
                a, n = med(samples, s.key, w, ours), med(samples, s.key, w, "nginx")
                pa, pn = (med(samples, s.key, w, ours, "p99_us"),
                          med(samples, s.key, w, "nginx", "p99_us"))
                h = med(samples, s.key, w, "haproxy")
                if None in (a, n, pa, pn):
                    verdict = "no figure"
                else:
                    ok_r, ok_p = a >= 1.1 * n, pa <= pn
                    verdict = ("met" if ok_r and ok_p else "NOT met (" + ", ".join(
                        x for x, bad in (("requests/s", not ok_r), ("p99", not ok_p)) if bad)
                        + ")")
                L.append(f"- {s.key}, workers {w}: {ratio(a, n)} nginx's requests/s "
                         f"({ratio(a, h)} HAProxy's), p99 {fmt_num(pa)} µs vs nginx "
                         f"{fmt_num(pn)} µs: {verdict}")
        L.append("")
    for s in scenarios:
        if isinstance(s, Chain):
            L += ["The middleware chain (ours only): requests/s with the chain ÷ requests/s "
                  "on the plain route, same run:", ""]
            for w in ctx.workers_list:
                L.append(f"- workers {w}: chain {fmt_num(med(samples, s.key, w, ours))} req/s,"
                         f" plain {fmt_num(med(samples, s.key, w, ours, 'plain_rps'))} req/s: "
                         f"{fmt_ratio(med(samples, s.key, w, ours, 'chain_ratio'))} (median of "
                         "the per-round ratios)")
            L.append("")
    for s in scenarios:
        if isinstance(s, Reload):
            L += [f"Reloads (issue 17), {RELOAD_CONNS} connections: requests/s while each proxy "
                  f"reloads every {RELOAD_INTERVAL_S:g} s its own way, against the plain "
                  f"figure ({RELOAD_PLAIN}, same run; `-` when it did not run), and the "
                  "requests that failed under reloads (wrk's errors: connect, read, write, "
                  "timeout, status >= 400), medians:", ""]
            for w in ctx.workers_list:
                for t in targets:
                    if not s.applies(t):
                        continue
                    a, p = med(samples, s.key, w, t.name), med(samples, RELOAD_PLAIN, w, t.name)
                    if a is None:  # failed, or not run at this worker count (smoke)
                        L.append(f"- workers {w}, {t.label}: no figure")
                        continue
                    L.append(f"- workers {w}, {t.label}: {fmt_num(a)} req/s under reloads, "
                             f"{fmt_num(p)} without: {ratio(a, p)}; "
                             f"{med(samples, s.key, w, t.name, 'failed') or 0:,.0f} failed "
                             f"({med(samples, s.key, w, t.name, 'failed_pct') or 0:.3f} %)")
            L.append("")
    return L


def tls_lines(ctx, scenarios, targets):
    """The TLS settings every proxy was held to, and what each start check's handshake
    negotiated (a target that negotiated something else is not comparable: said so)."""
    if not any(s.route[1] == "https" for s in scenarios):
        return []
    got = {t.name: {ctx.tls_params[(w, t.name)] for w in ctx.workers_list
                    if (w, t.name) in ctx.tls_params} for t in targets if t.tls}
    seen = " ; ".join(f"{t.label}: {', '.join(sorted(got[t.name])) or '?'}"
                      for t in targets if t.tls)
    L = [f"- TLS: {TLS_PROTOCOL} only, {TLS_CIPHER}, {TLS_CURVE}, an ECDSA P-256 "
         "certificate made for the run; resumption by session id from a cache shared by the "
         f"workers, no tickets (ours {TLS_SESSIONS:,} sessions, nginx shared:{TLS_NGINX_CACHE}, "
         f"HAProxy tune.ssl.cachesize {TLS_SESSIONS:,}); negotiated (start check): {seen}"]
    if len({p for v in got.values() for p in v}) > 1:
        L.append("- **Warning:** the proxies did not all negotiate the same TLS parameters: "
                 "the TLS figures are not comparable as they stand.")
    return L


def write_report(ctx, targets, scenarios, samples, outdir):
    ours, names = targets[0].name, [t.name for t in targets]
    l4 = any(s.route[1] == "tcp" for s in scenarios)
    l7 = any(s.route[1] != "tcp" for s in scenarios)
    modes = (" and ".join(m for m, on in (("tcp mode for L4", l4), ("http mode for L7", l7))
                          if on),
             " and ".join(m for m, on in (("stream module for L4", l4), ("http module for L7",
                                                                         l7)) if on))
    by_name = {t.name: t for t in targets}
    has = lambda *kinds: any(isinstance(s, kinds) for s in scenarios)
    L = [f"# Benchmark {ctx.name}: {targets[0].label} vs HAProxy vs nginx vs direct", "",
         f"- run: {ctx.stamp}, {ctx.elapsed:.0f} s; milestone {ctx.milestone} "
         f"({targets[0].version()}, release build); workers {', '.join(map(str, ctx.workers_list))}; "
         f"{ctx.rounds} round(s), interleaved{'; SMOKE run: figures are not meaningful' if ctx.smoke else ''}",
         f"- peers: HAProxy {by_name['haproxy'].version()} ({modes[0]}), nginx "
         f"{by_name['nginx'].version()} ({modes[1]})",
         f"- machine: {os.cpu_count()} CPUs ({ctx.cpu_model}), Linux {platform.release()}",
         "- " + "; ".join(what for what, on in (
             (f"bulk transfer: {ctx.bulk_bytes // MIB} MiB per run", has(Bulk)),
             (f"connection rate: {ctx.conn_seconds:g} s per run, {CONN_PARALLEL} parallel "
              "connectors", has(ConnRate)),
             (f"idle connections: {ctx.idle_conns:,} held at once",
              any(isinstance(s, IdleConns) and not s.tls for s in scenarios)),
             (f"idle TLS connections: {min(ctx.idle_conns, TLS_IDLE_CONNS_MAX):,} held at once",
              any(isinstance(s, IdleConns) and s.tls for s in scenarios)),
             (f"upload peak RSS: one {ctx.bulk_bytes // MIB} MiB upload", has(UploadPeakRss)),
             (f"L7: wrk, {ctx.wrk_seconds:g} s per run (over TLS: 1 s), one thread per load "
              "CPU", has(Wrk, WrkBig, Chain, Reload)),
             (f"reloads: one every {RELOAD_INTERVAL_S:g} s during a "
              f"{next((s.seconds(ctx) for s in scenarios if isinstance(s, Reload)), 0):g} s "
              "wrk run", has(Reload)),
             (f"TLS handshakes: {ctx.tls_seconds:g} s per run, {TLS_PARALLEL} in flight",
              has(TlsHandshake)),
             (f"chunked uploads: {TINY_CHUNK_BYTES // MIB} MiB in {TINY_CHUNK}-byte chunks, "
              f"{BIG_CHUNK_BYTES // MIB} MiB in {BIG_CHUNK}-byte chunks, {CHUNK_MAX_S} s at "
              "most each" + (" (smoke: 1/16 of each)" if ctx.smoke else ""), has(TinyChunks)))
             if on),
         "- pinning: " + "; ".join(f"workers {w}: {pin_plan(w)['text']}" for w in ctx.workers_list),
         *tls_lines(ctx, scenarios, targets),
         "- how to read this: [benchmarks/README.md](../README.md). Ratios compare medians "
         "measured in this same run; × HAProxy > 1 means faster than HAProxy for speed, "
         "more memory than HAProxy for the memory scenarios (idle-conns, upload-rss: lower is "
         "better), and more CPU per byte for l7-tiny-chunks (lower is better). Memory is "
         "measured on a freshly started instance of each target per measurement.", ""]
    loads = [r["other_load"] for sc in samples.values() for wv in sc.values()
             for tv in wv.values() for r in tv]
    if loads:
        noisy = sum(1 for x in loads if x >= OTHER_LOAD_WARN)
        L.insert(-1, f"- other processes on the machine during the measurements: median "
                     f"{statistics.median(loads):.2f} CPU, max {max(loads):.2f} CPU; "
                     f"{noisy} of {len(loads)} measurement(s) at {OTHER_LOAD_WARN} CPU or more"
                     f" (waited {ctx.quiet_waited:.0f} s in all for a quiet machine; "
                     f"{ctx.retried} noisy measurement(s) replaced by a second one)")
        if noisy:
            L += [f"**Warning:** other processes used the CPUs during {noisy} measurement(s) "
                  "(column `other load`): those figures are noisy; rerun on a quiet machine "
                  "to compare closely.", ""]
    if ctx.failures:
        L += ["**Failed measurements:**", ""] + [f"- {f}" for f in ctx.failures] + [""]
    # Summary: our proxy against each peer.
    L += ["## Summary: our proxy's median relative to each peer's", "",
          f"| scenario | workers | {ours} | HAProxy | nginx | direct | × HAProxy | × nginx | × direct |",
          "|---|---|---|---|---|---|---|---|---|"]
    for s in scenarios:
        for w in ctx.workers_list:
            m = {n: med(samples, s.key, w, n) for n in names}
            L.append(f"| {s.key} ({s.unit}) | {w} | {fmt_num(m[ours])} | {fmt_num(m['haproxy'])} | "
                     f"{fmt_num(m['nginx'])} | {fmt_num(m['direct'])} | {ratio(m[ours], m['haproxy'])} | "
                     f"{ratio(m[ours], m['nginx'])} | {ratio(m[ours], m['direct'])} |")
    if any(isinstance(s, Bulk) for s in scenarios):
        L += ["", "Goal (issue 7), L4: bulk throughput at least HAProxy's in tcp mode, both "
              "directions, at workers 1 and 2:", ""]
    for s in scenarios:
        if not isinstance(s, Bulk):
            continue
        for w in ctx.workers_list:
            a, b = med(samples, s.key, w, ours), med(samples, s.key, w, "haproxy")
            va, vb = values(samples, s.key, w, ours), values(samples, s.key, w, "haproxy")
            if a is None or b is None:
                verdict = "no figure"
            elif a >= b:
                verdict = "met"
            elif min(len(va), len(vb)) < 2:
                verdict = "not met in a single round (no spread to judge by)"
            elif max(va) >= min(vb):
                verdict = "not met, but within the spread (min–max ranges overlap): rerun"
            else:
                verdict = "NOT met (every round slower)"
            L.append(f"- {s.key}, workers {w}: {ratio(a, b)} HAProxy: {verdict}")
    L.append("")
    L += l7_goals(ctx, scenarios, samples, ours, targets)
    L += memory_goals(ctx, scenarios, samples, ours)
    for s in scenarios:
        png = outdir / f"{ctx.name}-{s.key}.png"
        plot(ctx, s, samples, targets, png)
        better = "higher" if s.higher_is_better else "lower"
        how = ""
        if isinstance(s, IdleConns) and s.http:
            how = (f" Figure: (proxy RSS with {ctx.idle_conns:,} idle keep-alive connections "
                   f"− proxy RSS before) / {ctx.idle_conns:,}, RSS summed over the proxy's "
                   "processes (VmRSS); each connection made one request (GET /, 2-byte "
                   f"response) through the proxy, opened {CONN_PARALLEL} at a time, after a "
                   "0.2 s warm-up of the same requests; `proxy fds/conn` near 1 means the "
                   "proxy holds the client side only (the upstream connection went back to "
                   "its pool); direct: no proxy, only the backend's figure (httpback: no "
                   "buffer on an idle connection), for reference.")
        elif isinstance(s, IdleConns):
            how = (f" Figure: (proxy RSS with {ctx.idle_conns:,} idle connections − proxy RSS "
                       f"before) / {ctx.idle_conns:,}, RSS summed over the proxy's processes "
                       "(VmRSS); each connection exchanged "
                       f"{IDLE_PAYLOAD} bytes once through the proxy, opened {CONN_PARALLEL} at "
                       "a time, after a 0.2 s warm-up; direct: no proxy, only the backend's "
                       "figure (an epoll echo server with a 4 KiB buffer per connection), for "
                       "reference.")
        elif isinstance(s, IdleConns) and s.tls:
            n = s.count(ctx)
            how = (f" Figure: (proxy RSS with {n:,} idle keep-alive TLS "
                   f"connections − proxy RSS before) / {n:,}, RSS summed over the "
                   "proxy's processes (VmRSS); each connection made one TLS handshake "
                   "(resuming the session of the first, so the session cache grows by one "
                   "entry, not N) and one request (`POST /size/16384` with a 16 KiB body: a full "
                   "TLS record through the proxy each way, so buffers kept attached are all "
                   "resident), opened "
                   f"{CONN_PARALLEL} at a time (`tlsrate hold --reuse`), after a 0.2 s "
                   "warm-up of the same; no direct row (the backend speaks no TLS).")
        elif isinstance(s, TlsHandshake):
            how = (f" tlsrate, {TLS_PARALLEL} connections in flight, {ctx.tls_seconds:g} s per "
                   "run: connect, TLS handshake, close_notify, wait for the proxy's close; no "
                   "request (no upstream work). " + (
                       "Each slot first makes one full handshake off the clock and then offers "
                       "its session every time: `resumed %` is the share the proxy actually "
                       "resumed (below 95 % the measurement fails)." if s.reuse else
                       "No session offered: every handshake is a full one (ECDHE + an ECDSA "
                       "signature on the proxy's side).") +
                   " `proxy CPU µs/handshake`: the proxy's CPU over the run ÷ handshakes, "
                   "its cost whoever was the bottleneck (the client verifies a signature per "
                   "full handshake too). No direct row.")
        elif isinstance(s, Wrk):
            how = (f" wrk, {s.conns} connection(s), "
                   f"{min(ctx.wrk_seconds, 1) if s.tls else ctx.wrk_seconds:g} s per run; latency "
                   "percentiles from wrk's own histogram (done() callback); `proxy CPU µs/req`"
                   " is the proxy's CPU time over the run divided by the requests served." +
                   (" Over TLS (wrk over https): each connection's one full handshake is in "
                    "the run; no direct row." if s.tls else ""))
        elif isinstance(s, Reload):
            how = (f" wrk, {RELOAD_CONNS} keep-alive connections ({RELOAD_PLAIN}'s load: its "
                   "figure is the plain one, in the lines at the top) to a route whose only "
                   "difference from the plain one is a response header (`X-Bench-Generation`), "
                   "on a freshly started instance per measurement (0.2 s of warm-up, not in "
                   f"smoke), {s.seconds(ctx):g} s during which the proxy reloads every "
                   f"{RELOAD_INTERVAL_S:g} s, each reload writing the header's next value "
                   "(ours: SIGHUP; nginx: `nginx -s reload`; HAProxy: master-worker mode, "
                   "SIGUSR2 to the master); after the run a GET must show the last value. "
                   "`failed requests`: wrk's errors under reloads (a read error is a "
                   "request written on a keep-alive connection that the proxy closed "
                   "without answering: an old worker going away). `proxy CPU µs/req` covers "
                   "the run under reloads, old and new workers included. No direct row.")
        elif isinstance(s, Chain):
            how = (" Ours only: the chain route and the plain route measured back to back "
                   "in each measurement (order alternating), same wrk load; `chain ÷ plain` "
                   "is the cost of the chain (1.00 = free).")
        elif isinstance(s, TinyChunks):
            (c1, n1, _), (c2, n2, _) = s.sizes(ctx)
            how = (f" Figure: the proxy's CPU seconds (all its processes, from /proc) over one "
                   f"`POST /upload` of {n1 // MIB} MiB of payload in {c1}-byte chunks "
                   "(`Transfer-Encoding: chunked`, `blast post --chunk`), per GiB of payload "
                   f"(an upload stops sending after {CHUNK_MAX_S} s: per GiB sent);"
                   f" next to it the same for {n2 // MIB} MiB in {c2}-byte chunks, their ratio "
                   "(the cost of tiny chunks relative to large ones) and each upload's "
                   "payload MB/s. Every proxy streams the body (nginx: "
                   "`proxy_request_buffering off`, `proxy_http_version 1.1`). Direct: no "
                   "proxy, only the load's own speed (client and backend on the load CPU).")
        elif isinstance(s, UploadPeakRss):
            how = (" Figure: Σ over the proxy's processes of (VmHWM after − VmRSS before), "
                   "the peak reset (clear_refs) just before the upload; the goal is < 16 MiB "
                   "(16,384 KiB) for 1 GiB.")
        L += [f"## {s.key}: {s.title}", "", f"{s.unit}, {better} is better; the ratios divide "
              "this row's median by the peer's." + how, "", f"![{s.key}]({png.name})", "",
              "| workers | target | median " + s.unit + " | min–max | " +
              " | ".join(title for _, title, _ in s.extras) +
              " | × HAProxy | × nginx | × direct | other load (max CPU) |",
              "|---|---|---|---|" + "---|" * len(s.extras) + "---|---|---|---|"]
        for w in ctx.workers_list:
            for t in targets:
                if not s.applies(t):
                    continue
                vals = values(samples, s.key, w, t.name)
                got = samples.get(s.key, {}).get(w, {}).get(t.name, [])
                ex = []
                for k, _, fmt in s.extras:
                    v = med(samples, s.key, w, t.name, k)
                    ex.append(fmt.format(v) if v is not None else "-")
                if not vals:
                    what = "no proxy" if got and isinstance(t, Direct) else "no figure"
                    L.append(f"| {w} | {t.label} | {what} | | " + " | ".join(ex) +
                             " | | | | " + (f"{max(r['other_load'] for r in got):.2f} |"
                                           if got else "|"))
                    continue
                load = max(r["other_load"] for r in got)
                m, lo, hi = summarize(vals)
                L.append(f"| {w} | {t.label} | {fmt_num(m)} | {fmt_num(lo)}–{fmt_num(hi)} | " +
                         " | ".join(ex) + f" | {ratio(m, med(samples, s.key, w, 'haproxy'))} | "
                         f"{ratio(m, med(samples, s.key, w, 'nginx'))} | "
                         f"{ratio(m, med(samples, s.key, w, 'direct'))} | {load:.2f} |")
        L.append("")
    md = outdir / f"{ctx.name}.md"
    md.write_text("\n".join(L))
    (outdir / f"{ctx.name}.json").write_text(json.dumps(
        {"name": ctx.name, "stamp": ctx.stamp, "milestone": ctx.milestone,
         "workers": ctx.workers_list, "rounds": ctx.rounds, "bulk_bytes": ctx.bulk_bytes,
         "conn_seconds": ctx.conn_seconds, "idle_conns": ctx.idle_conns,
         "failures": ctx.failures, "samples": samples},
        indent=1))
    return md
