/* sni.c - see sni.h. */
#include "sni.h"

/* see sni.h */
gw_sni_result_t gw_sni_parse(const void *data, size_t len, size_t max, gw_sni_t *out)
{
    (void)data;
    (void)len;
    (void)max;
    out->err_pos = 0;
    return GW_SNI_NEED_MORE;
}

/* see sni.h */
bool gw_sni_name_valid(const char *name, size_t len, bool lower)
{
    (void)name;
    (void)len;
    (void)lower;
    return false;
}

/* see sni.h */
const char *gw_sni_result_name(gw_sni_result_t r)
{
    (void)r;
    return "?";
}
