"""gwtest: the end-to-end harness shared by every milestone's pytest suite.

Modules:
  env         environment knobs (GW_BIN_DIR, GW_WORKERS, GW_SANITIZER, GW_E2E_TRANSCRIPT)
  wait        polling to a deadline (the only way a test waits for anything)
  yamlw       a tiny YAML writer for generated configs
  config      placeholders (Port) and the standard config builders
  ports       free loopback ports, a refused address, a blackhole address
  transcript  what crossed each side, printed when a test fails
  proc        the gateway process: start, readiness, stop, sanitizer checks; one-shot runs
  backends    threaded fake upstreams (echo, reply-after-EOF, half-close-first, sink, source, ...)
  clients     client helpers: connect, read to EOF, bulk transfers, many clients at once
  http        HTTP/1.1 (milestone 04 on): a keep-alive upstream that records every request,
              and a raw-socket client with a strict response reader
  admin       the admin API (milestone 03 on): strict HTTP exchanges, JSON, and a strict
              parser of the Prometheus text exposition format
"""
