/* mw_request_id.c - the request_id middleware: every request gets an X-Request-ID (the
 * client's, when it is sane, else 128 random bits in hex), which the response carries back
 * and the access log records.
 *
 *   middleware:
 *     - request_id: {}        # no options
 *
 * The id logic is gw_mw_request_id (mw_basic.c, tested on its own); this file gives it the
 * worker's random bytes and puts the id on the response. */
#include <stdio.h>
#include <string.h>

#include "04-http/chain.h"
#include "04-http/mw.h"

/* Takes no options; a key under it is reported as unknown by the loader. */
static void *decode(gw_cdoc_t *doc, const gw_cnode_t *opts)
{
    gw_cnode_expect_map(doc, opts, "request_id");
    return NULL;
}

static void print(FILE *out, const void *cfg, int in)
{
    (void)cfg;
    (void)in;
    fputs(" {}\n", out);
}

static int request(const void *cfg, void *state, gw_hx_t *x, gw_h1_head_t *req, gw_h1_head_t *resp)
{
    (void)cfg;
    (void)state;
    (void)resp;
    uint8_t rnd[16];
    uint64_t a = gw_hx_random(x), b = gw_hx_random(x);
    memcpy(rnd, &a, 8);
    memcpy(rnd + 8, &b, 8);
    int rc = gw_mw_request_id(req, rnd, x->request_id);
    return rc == 0 ? 0 : gw_mw_head_status(rc);
}

static void response(const void *cfg, void *state, const gw_hx_t *x, const gw_h1_head_t *req,
                     gw_h1_head_t *resp)
{
    (void)cfg;
    (void)state;
    (void)req;
    if (x->request_id[0] != '\0')
        (void)gw_h1_head_set(resp, "X-Request-ID", x->request_id, strlen(x->request_id));
}

const gw_mw_ops_t gw_mw_request_id_ops = {
    .name = "request_id",
    .decode = decode,
    .print = print,
    .request = request,
    .response = response,
};
