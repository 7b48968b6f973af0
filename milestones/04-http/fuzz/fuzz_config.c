/* fuzz_config.c - the config loader: YAML text to effective config, with the keys of every
 * milestone (the level byte picks gw01's core keys, gw02's, gw03's or gw04's), from memory
 * only: gw_loadio is replaced, so host names resolve to made-up addresses and key files
 * come from two fixed texts; nothing is opened, nothing is resolved.
 *
 * Input: a level byte (0-3: gw01..gw04), then the YAML text.
 *
 * Invariants: a load succeeds, or fails with at least one "NAME:LINE:COL: message" line and
 * the config already freed; an effective config printed (-T) loads back, and prints the same
 * text again (what -T shows is what runs); everything is freed (LeakSanitizer). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "02-lb/lbconfig.h"
#include "03-resilience/resconfig.h"
#include "04-http/httpcfg.h"
#include "error.h"
#include "fuzz/gwfuzz.h"
#include "loadio.h"

static const char jwks[] = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\","
                           "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},"
                           "{\"kty\":\"EC\",\"kid\":\"e\",\"crv\":\"P-256\","
                           "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                           "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

static unsigned mem_cpus(void)
{
    return 2;
}

/* "*.invalid" fails (RFC 2606), anything else gets 10.x.y.z from its name. */
static int mem_resolve(const char *host, unsigned port, gw_addr_t *out, const char **why)
{
    size_t n = strlen(host);
    if (n >= 8 && strcmp(host + n - 8, ".invalid") == 0) {
        *why = "Name or service not known";
        return GW_ERESOLVE;
    }
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)host[i]) * 16777619u;
    char text[32];
    snprintf(text, sizeof text, "10.%u.%u.%u:%u", h >> 16 & 255, h >> 8 & 255, h & 255, port);
    return gw_addr_parse(text, false, false, out, why);
}

static char *mem_read_file(const char *path, size_t cap, size_t *len)
{
    const char *text = strcmp(path, "/fuzz/jwks.json") == 0 ? jwks : NULL;
    if (strcmp(path, "/fuzz/big") == 0) {
        errno = EFBIG;
        return NULL;
    }
    if (text == NULL) {
        errno = ENOENT;
        return NULL;
    }
    *len = strlen(text);
    (void)cap;
    return gw_fz_dup(text, *len);
}

static const gw_loadio_t mem_io = {mem_cpus, mem_resolve, mem_read_file};

static const gw_config_ext_t *ext_of(uint8_t level)
{
    switch (level & 3) {
    case 0:
        return NULL;
    case 1:
        return &gw_lb_config_ext;
    case 2:
        return &gw_res_config_ext;
    default:
        return &gw_http_config_ext;
    }
}

/* Prints CFG as -T does into a malloc'd string. */
static char *print(const gw_config_t *cfg, const gw_config_ext_t *ext)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    GW_FZ_CHECK(f != NULL, "open_memstream");
    gw_config_print(f, cfg, ext);
    fclose(f);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 32768)
        return 0;
    gw_loadio_set(&mem_io);
    gw_fz_t f = {data, size};
    const gw_config_ext_t *ext = ext_of(gw_fz_u8(&f));
    char *text = gw_fz_dup(f.p, f.n);
    char *errs = NULL;
    size_t nerrs = 0;
    FILE *ef = open_memstream(&errs, &nerrs);
    GW_FZ_CHECK(ef != NULL, "open_memstream");
    gw_config_t cfg;
    int rc = gw_config_load_string("f.yaml", text, ext, &cfg, ef);
    fclose(ef);
    if (rc != 0) {
        GW_FZ_CHECK(rc == GW_ECONFIG && strncmp(errs, "f.yaml:", 7) == 0,
                    "failed (%d) without a located message: [%s]", rc, errs);
    } else {
        GW_FZ_CHECK(nerrs == 0, "loaded with messages: [%s]", errs);
        char *once = print(&cfg, ext);
        gw_config_t again;
        char *errs2 = NULL;
        size_t n2 = 0;
        FILE *ef2 = open_memstream(&errs2, &n2);
        int rc2 =
            gw_config_load_string("f.yaml", once, ext, &again, ef2) /* same name: -T says it */;
        fclose(ef2);
        GW_FZ_CHECK(rc2 == 0, "-T output does not load back:\n%s\n--- errors:\n%s", once, errs2);
        char *twice = print(&again, ext);
        GW_FZ_CHECK(strcmp(once, twice) == 0, "-T changed on reload:\n%s\n--- then:\n%s", once,
                    twice);
        free(twice);
        free(errs2);
        free(once);
        gw_config_free(&again, ext);
        gw_config_free(&cfg, ext);
    }
    free(errs);
    free(text);
    gw_loadio_set(NULL);
    return 0;
}
