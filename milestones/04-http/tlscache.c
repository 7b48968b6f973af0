/* tlscache.c - a stub: the contract and its tests come first (see tlscache.h). */
#include "04-http/tlscache.h"

#include <string.h>

#include "error.h"

static void stub_save(const br_ssl_session_cache_class **ctx, br_ssl_server_context *sc,
                      const br_ssl_session_parameters *p)
{
    (void)ctx;
    (void)sc;
    (void)p;
}

static int stub_load(const br_ssl_session_cache_class **ctx, br_ssl_server_context *sc,
                     br_ssl_session_parameters *p)
{
    (void)ctx;
    (void)sc;
    (void)p;
    return 0;
}

static const br_ssl_session_cache_class stub_class = {sizeof(gw_tlscache_t), stub_save, stub_load};

int gw_tlscache_init(gw_tlscache_t *c, size_t entries, size_t stripes)
{
    memset(c, 0, sizeof *c);
    if (entries > GW_TLSCACHE_MAX_ENTRIES || stripes > GW_TLSCACHE_MAX_STRIPES)
        return GW_EINVAL;
    if (entries > 0)
        c->vtable = &stub_class;
    return 0;
}

void gw_tlscache_free(gw_tlscache_t *c)
{
    memset(c, 0, sizeof *c);
}

const br_ssl_session_cache_class **gw_tlscache_class(gw_tlscache_t *c)
{
    return c->vtable != NULL ? &c->vtable : NULL;
}

size_t gw_tlscache_capacity(const gw_tlscache_t *c)
{
    return c->capacity;
}

size_t gw_tlscache_bytes(const gw_tlscache_t *c)
{
    return c->bytes;
}

void gw_tlscache_stats(const gw_tlscache_t *c, gw_tlscache_stats_t *out)
{
    (void)c;
    memset(out, 0, sizeof *out);
}

void gw_tlscache_conn_init(gw_tlscache_conn_t *conn, gw_tlscache_t *cache)
{
    memset(conn, 0, sizeof *conn);
    conn->cache = cache;
}

const br_ssl_session_cache_class **gw_tlscache_conn_class(gw_tlscache_conn_t *conn)
{
    return gw_tlscache_class(conn->cache);
}

bool gw_tlscache_conn_resumed(const gw_tlscache_conn_t *conn)
{
    return conn->hit && !conn->saved;
}
