"""Generated configurations: placeholders the harness resolves, and the standard builders.

A test writes its config as Python dicts. Where the proxy must listen, it puts Port("name")
(or leaves a listener's `address` out: it becomes Port(<listener name>)); the harness picks
a free loopback port for each, renders "127.0.0.1:PORT", and the gateway handle then knows
the address by that name: gw.addr("edge"). Backends are passed as objects with .address_str
or as plain "host:port" strings.
"""
from . import env, ports


class Port:
    """Placeholder for a free loopback listen address, known to the test by NAME."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "Port(%r)" % self.name


def _is_addr_tuple(v):
    return isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)


def _addr_text(v):
    if hasattr(v, "address_str"):
        return v.address_str
    if isinstance(v, tuple):
        return ports.fmt(v)
    return v


def resolve(cfg, known=None):
    """Returns (a copy of CFG with every placeholder replaced, {name: (host, port)}).
    CFG itself is left as it was (backend objects in it are not copied). KNOWN, {name:
    (host, port)} from an earlier resolve, keeps those names at their addresses (a config
    rewritten for a reload keeps the listeners it does not change where they are); other
    names get free ports. The result holds only the names CFG uses."""
    known = known or {}
    addrs = {}

    def walk(v, in_listeners=False):
        if isinstance(v, Port):
            if v.name not in addrs:
                addrs[v.name] = known.get(v.name) or (ports.HOST, ports.free_port())
            return ports.fmt(addrs[v.name])
        if hasattr(v, "address_str") or _is_addr_tuple(v):
            return _addr_text(v)
        if isinstance(v, dict):
            if in_listeners and "address" not in v and isinstance(v.get("name"), str):
                v = dict(v, address=Port(v["name"]))
            return {k: walk(x, k == "listeners") for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, in_listeners) for x in v]
        return v

    return walk(cfg), addrs


def base(**top):
    """The top-level keys every generated config starts with: workers from GW_WORKERS, plain
    info logs (the harness reads `ready` from them). Keyword arguments override or add."""
    cfg = {
        "workers": env.WORKERS,
        "drain_timeout": "5s",  # teardown waits at most this (+10s) for a stuck proxy
        "log": {"level": "info", "format": "plain"},
    }
    cfg.update(top)
    return cfg


def tcp_proxy(backend, listener=None, buffers=None, name="edge", **top):
    """A one-listener TCP proxy (gw01 and later) towards BACKEND (an object with
    .address_str, a (host, port) tuple or a "host:port" string; a list for several).
    LISTENER adds or overrides listener keys (connect_timeout, idle_timeout,
    max_connections...), BUFFERS the buffers mapping, TOP top-level keys."""
    backends = backend if isinstance(backend, list) else [backend]
    lst = {"name": name, "address": Port(name), "protocol": "tcp", "upstream": "app"}
    lst.update(listener or {})
    cfg = base(**top)
    if buffers is not None:
        cfg["buffers"] = buffers
    cfg["listeners"] = [lst]
    cfg["upstreams"] = {"app": {"backends": [{"address": b} for b in backends]}}
    return cfg


def lb_proxy(backends, balancer=None, weights=None, listener=None, upstream=None, **top):
    """tcp_proxy() towards several BACKENDS (gw02 and later): BALANCER sets the upstream's
    `balancer`, WEIGHTS (a list, one per backend; None entries left out) each backend's
    `weight`, UPSTREAM adds or overrides upstream keys (health_check, outlier, hash...)."""
    cfg = tcp_proxy(list(backends), listener=listener, **top)
    up = cfg["upstreams"]["app"]
    if balancer is not None:
        up["balancer"] = balancer
    if weights is not None:
        assert len(weights) == len(up["backends"]), "one weight per backend"
        for b, w in zip(up["backends"], weights):
            if w is not None:
                b["weight"] = w
    up.update(upstream or {})
    # Backends first in the output reads worse; keep the upstream's own keys on top.
    cfg["upstreams"]["app"] = dict(sorted(up.items(), key=lambda kv: kv[0] == "backends"))
    return cfg


def route(upstream="app", name=None, middleware=None, split=None, **match_and_keys):
    """One http route (gw04 and later). Match keys (host, path, path_prefix, methods,
    headers) go under `match` (default: path_prefix /); route keys (host_rewrite, max_body,
    sticky_header...) stay on the route. SPLIT, a list of (upstream, weight), replaces
    UPSTREAM; MIDDLEWARE is the list of middleware mappings in order."""
    match_keys = ("host", "path", "path_prefix", "methods", "headers")
    match = {k: v for k, v in match_and_keys.items() if k in match_keys}
    rest = {k: v for k, v in match_and_keys.items() if k not in match_keys}
    if not match:
        match = {"path_prefix": "/"}
    r = {}
    if name is not None:
        r["name"] = name
    r["match"] = match
    if split is not None:
        targets = [{"upstream": u, "weight": w} for u, w in split]
        r["split"] = {"targets": targets}
        for k in ("sticky_header", "sticky_cookie"):
            if k in rest:
                r["split"][k] = rest.pop(k)
    else:
        r["upstream"] = upstream
    r.update(rest)
    if middleware:
        r["middleware"] = list(middleware)
    return r


def http_proxy(upstreams, routes=None, http=None, listener=None, name="edge", keepalive=None, **top):
    """A one-listener HTTP reverse proxy (gw04 and later). UPSTREAMS: a backend (object with
    .address_str, (host, port) or "host:port"), a list of them (one upstream "app"), or a
    dict {upstream name: backend or list}. ROUTES: route() mappings (default: everything to
    "app"). HTTP: the listener's `http` keys (timeouts, limits, trusted_proxies). LISTENER
    adds or overrides listener keys; KEEPALIVE sets every upstream's `keepalive` mapping;
    TOP top-level keys."""
    if not isinstance(upstreams, dict):
        upstreams = {"app": upstreams}
    lst = {"name": name, "address": Port(name), "protocol": "http"}
    if http:
        lst["http"] = dict(http)
    lst["routes"] = list(routes) if routes is not None else [route("app", name="default")]
    lst.update(listener or {})
    cfg = base(**top)
    cfg["listeners"] = [lst]
    ups = {}
    for uname, bs in upstreams.items():
        bs = bs if isinstance(bs, list) else [bs]
        up = {}
        if keepalive is not None:
            up["keepalive"] = dict(keepalive)
        up["backends"] = [{"address": b} for b in bs]
        ups[uname] = up
    cfg["upstreams"] = ups
    return cfg
