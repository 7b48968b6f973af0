"""Milestone 05's admin routes on gw05: POST /reload (bearer token when one is set) and GET
/config (the serving generation's effective configuration, secrets masked, as -T prints)."""
from gwtest import admin as gwadmin
from gwtest import config
from gwtest.config import Port

GW = "gw05"
TOKEN = "t0ken-for-the-admin-api"
SECRET = "a-jwt-secret-of-at-least-32-bytes-long!!"


def cfg_with(app, n, token=None, jwt=False):
    mw = [{"headers": {"response": {"set": {"X-Gen": str(n)}}}}]
    if jwt:
        mw.append({"jwt": {"secret": SECRET}})
    cfg = config.http_proxy(app, routes=[config.route("app", name="all", middleware=mw)])
    cfg["admin"] = {"address": Port("admin")}
    if token:
        cfg["admin"]["token"] = TOKEN
    return cfg


def test_post_reload_requires_the_token(gateway, backend):
    app = backend.http(name="a")
    gw = gateway(GW, cfg_with(app, 1, token=TOKEN))
    gw.rewrite(cfg_with(app, 2, token=TOKEN))
    r = gwadmin.get(gw.addr("admin"), "/reload", method="POST")
    assert r.status == 401, r
    assert "config generation 2 applied" not in gw.stderr_text()
    r = gwadmin.get(gw.addr("admin"), "/reload", method="POST", token=TOKEN)
    assert r.status == 200 and r.json()["generation"] == 2, r
    r = gwadmin.get(gw.addr("admin"), "/reload", token=TOKEN)
    assert r.status == 405 and r.header("Allow") == "POST", r


def test_get_config_shows_the_serving_generation_with_secrets_masked(gateway, backend):
    app = backend.http(name="a")
    gw = gateway(GW, cfg_with(app, 1, token=TOKEN, jwt=True))
    r = gwadmin.get(gw.addr("admin"), "/config", token=TOKEN)
    assert r.status == 200, r
    text = r.body.decode()
    assert '"X-Gen": "1"' in text, text
    assert SECRET not in text and TOKEN not in text, "a secret leaked into GET /config"
    gw.rewrite(cfg_with(app, 2, token=TOKEN, jwt=True))
    assert gw.reload(via="admin", token=TOKEN).status == 200
    text = gwadmin.get(gw.addr("admin"), "/config", token=TOKEN).body.decode()
    assert '"X-Gen": "2"' in text, "GET /config must show the generation serving now"


def test_restart_only_keys_are_kept_and_reported(gateway, backend, http_client):
    app = backend.http(name="a")
    cfg = cfg_with(app, 1)
    gw = gateway(GW, cfg)
    cfg2 = cfg_with(app, 2)
    cfg2["workers"] = cfg["workers"] + 2
    gw.rewrite(cfg2)
    r = gw.reload(via="admin")
    assert r.status == 200, r
    doc = r.json()
    assert doc["restart_required"] == ["workers %d -> %d" % (cfg["workers"], cfg["workers"] + 2)], doc
    gw.wait_log(r"kept at old values \(restart needed\): workers")
    m = gwadmin.scrape(gw.addr("admin"))
    assert m.get("gw_config_restart_required_total") == 1
    assert http_client(gw).get("/").header("X-Gen") == "2", "the other changes apply"
    assert "workers: %d" % cfg["workers"] in gwadmin.get(gw.addr("admin"), "/config").body.decode()


def test_reload_to_verify_false_warns_as_the_start_does(gateway, backend):
    """A reload that turns an upstream's TLS verification off gets the start's warning: the
    operator who edits the file sees it in the log as one who restarts would."""
    app = backend.http(name="a")
    cfg = cfg_with(app, 1)
    gw = gateway(GW, cfg)
    assert "verify: false" not in gw.stderr_text()
    cfg2 = cfg_with(app, 2)
    cfg2["upstreams"]["app"]["tls"] = {"verify": False, "server_name": "backend.test"}
    gw.rewrite(cfg2)
    assert gw.reload(via="admin").status == 200
    gw.wait_log(r"verify: false")
