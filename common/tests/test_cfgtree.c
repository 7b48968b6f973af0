/* test_cfgtree.c - unit tests for cfgtree.c: YAML to nodes, positions, getters, unused keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfgtree.h"
#include "error.h"

static gw_cdoc_t doc; /* every test loads into it; the teardown frees it */

static int teardown(void **state)
{
    (void)state;
    gw_cdoc_free(&doc);
    return 0;
}

static int load_level(const char *text, int level)
{
    return gw_cdoc_load_string(&doc, "t.yaml", text, strlen(text), level);
}

static int load(const char *text)
{
    return load_level(text, 1);
}

/* Asserts that exactly the NULL-terminated list of errors was recorded, in order. */
static void expect_errors_v(const char *const *want)
{
    size_t n = 0;
    bool same = true;
    while (want[n])
        n++;
    for (size_t i = 0; i < n && i < doc.nerrors; i++)
        same = same && !strcmp(doc.errors[i], want[i]);
    if (same && n == doc.nerrors)
        return;
    for (size_t i = 0; i < doc.nerrors; i++)
        print_message("recorded: %s\n", doc.errors[i]);
    for (size_t i = 0; i < n; i++)
        print_message("expected: %s\n", want[i]);
    fail_msg("errors differ");
}
#define expect_errors(...) expect_errors_v((const char *const[]){__VA_ARGS__, NULL})

static void expect_no_errors(void)
{
    expect_errors_v((const char *const[]){NULL});
}

/* The value of KEY in the root mapping (marks it used). */
static const gw_cnode_t *root_get(const char *key)
{
    return gw_cmap_get(&doc, doc.root, key);
}

/* ---- tree building ------------------------------------------------------------------ */

static void cdoc_builds_tree_with_positions(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\nb:\n  c: [x, y]\n"), 0);
    expect_no_errors();
    assert_int_equal(doc.root->type, GW_CNODE_MAP);
    assert_int_equal(doc.root->n, 2);
    const gw_cnode_t *b = root_get("b");
    assert_int_equal(b->type, GW_CNODE_MAP);
    assert_int_equal(b->line, 3);
    assert_int_equal(b->col, 3);
    const gw_cnode_t *c = gw_cmap_get(&doc, b, "c");
    assert_int_equal(c->type, GW_CNODE_SEQ);
    assert_int_equal(c->n, 2);
    assert_string_equal(c->items[1]->str, "y");
    assert_int_equal(c->items[1]->line, 3);
    assert_int_equal(c->items[1]->col, 10);
}

static void cdoc_scalar_null_and_quoted_flags(void **state)
{
    (void)state;
    assert_int_equal(load("a:\nb: ~\nc: null\nd: 'null'\ne: \"\"\nf: x\n"), 0);
    assert_true(root_get("a")->null);
    assert_true(root_get("b")->null);
    assert_true(root_get("c")->null);
    assert_false(root_get("d")->null);
    assert_true(root_get("d")->quoted);
    assert_false(root_get("e")->null);
    assert_string_equal(root_get("e")->str, "");
    assert_false(root_get("f")->quoted);
}

static void cdoc_many_items_grow(void **state)
{
    (void)state;
    char text[4096];
    size_t len = 0;
    len += (size_t)snprintf(text + len, sizeof(text) - len, "[");
    for (int i = 0; i < 300; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%d,", i);
    snprintf(text + len, sizeof(text) - len, "]");
    assert_int_equal(load(text), 0);
    assert_int_equal(doc.root->n, 300);
    assert_string_equal(doc.root->items[299]->str, "299");
}

static void cdoc_syntax_error_position(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\n  b: 2\n"), GW_ECONFIG);
    expect_errors("t.yaml:2:4: syntax error: mapping values are not allowed in this context");
    assert_null(doc.root);
}

static void cdoc_syntax_error_names_context(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\nb: \"open\n"), GW_ECONFIG);
    expect_errors("t.yaml:3:1: syntax error: found unexpected end of stream "
                  "(while scanning a quoted scalar at 2:4)");
}

static void cdoc_syntax_error_tab_hint(void **state)
{
    (void)state;
    assert_int_equal(load("a:\n\tb: 1\n"), GW_ECONFIG);
    expect_errors("t.yaml:2:1: syntax error: found character that cannot start any token "
                  "(while scanning for the next token at 2:1) (indent with spaces, not tabs)");
}

static void cdoc_syntax_error_inside_nested_value_frees_partial_tree(void **state)
{
    (void)state;
    /* The error strikes while a key and two mappings are pending on the builder's stack. */
    assert_int_equal(load("a:\n  b:\n    c: [1, 2\n"), GW_ECONFIG);
    assert_int_equal(doc.nerrors, 1);
    assert_null(doc.root);
}

static void cdoc_invalid_byte_position(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\nbb: \x01\n"), GW_ECONFIG);
    expect_errors("t.yaml:2:5: invalid text: control characters are not allowed (byte 0x01)");
}

static void cdoc_invalid_utf8_position(void **state)
{
    (void)state;
    assert_int_equal(load("a: \xc3\xa9\xff\n"), GW_ECONFIG);
    expect_errors("t.yaml:1:5: invalid text: invalid leading UTF-8 octet (byte 0xFF)");
}

static void cdoc_duplicate_key_reported_and_first_kept(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\nb: 2\na: 3\n"), 0);
    expect_errors("t.yaml:3:1: duplicate key 'a' (first defined at 1:1)");
    assert_int_equal(doc.root->n, 2);
    assert_string_equal(root_get("a")->str, "1");
}

static void cdoc_duplicate_keys_reported_in_document_order(void **state)
{
    (void)state;
    assert_int_equal(load("z: 1\na: 1\nz: 2\na: 2\nz: 3\n"), 0);
    expect_errors("t.yaml:3:1: duplicate key 'z' (first defined at 1:1)",
                  "t.yaml:4:1: duplicate key 'a' (first defined at 2:1)",
                  "t.yaml:5:1: duplicate key 'z' (first defined at 1:1)");
    assert_int_equal(doc.root->n, 2);
}

static void cdoc_duplicate_key_in_nested_flow_map(void **state)
{
    (void)state;
    assert_int_equal(load("a: {x: 1, x: 2}\n"), 0);
    expect_errors("t.yaml:1:11: duplicate key 'x' (first defined at 1:5)");
}

static void cdoc_anchor_and_alias_rejected(void **state)
{
    (void)state;
    assert_int_equal(load("a: &x 1\nb: *x\nc: 3\n"), 0);
    expect_errors("t.yaml:1:4: anchors (&x) are not supported",
                  "t.yaml:2:4: aliases (*x) are not supported");
    assert_int_equal(doc.root->n, 2); /* b was dropped, a and c stay */
    assert_null(root_get("b"));
}

static void cdoc_alias_in_sequence_dropped(void **state)
{
    (void)state;
    assert_int_equal(load("a: [&x 1, *x, 2]\n"), 0);
    assert_int_equal(doc.nerrors, 2);
    assert_int_equal(root_get("a")->n, 2);
}

static void cdoc_tag_rejected(void **state)
{
    (void)state;
    assert_int_equal(load("a: !!str 5\n"), 0);
    expect_errors("t.yaml:1:4: tags (tag:yaml.org,2002:str) are not supported");
}

static void cdoc_second_document_rejected(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\n---\nb: 2\n"), 0);
    expect_errors("t.yaml:2:1: only one YAML document is allowed per file");
    assert_int_equal(doc.root->n, 1);
}

static void cdoc_sequence_key_rejected(void **state)
{
    (void)state;
    assert_int_equal(load("? [a, b]\n: 1\nc: 2\n"), 0);
    expect_errors("t.yaml:1:3: keys must be plain strings, not a sequence");
    assert_int_equal(doc.root->n, 1);
}

static void cdoc_mapping_key_with_mapping_value_rejected(void **state)
{
    (void)state;
    assert_int_equal(load("? {a: 1}\n: {b: 2}\n"), 0);
    expect_errors("t.yaml:1:3: keys must be plain strings, not a mapping");
    assert_int_equal(doc.root->n, 0);
}

static void cdoc_alias_key_with_mapping_value_rejected(void **state)
{
    (void)state;
    assert_int_equal(load("a: &k x\n*k : {b: 1}\n"), 0);
    expect_errors("t.yaml:1:4: anchors (&k) are not supported",
                  "t.yaml:2:1: aliases (*k) are not supported");
    assert_int_equal(doc.root->n, 1);
}

static void cdoc_nul_character_rejected(void **state)
{
    (void)state;
    assert_int_equal(load("a: \"x\\0y\"\n"), 0);
    expect_errors("t.yaml:1:4: NUL characters are not allowed in values");
}

static void cdoc_empty_text_is_empty_configuration(void **state)
{
    (void)state;
    assert_int_equal(load(""), GW_ECONFIG);
    expect_errors("t.yaml:1:1: empty configuration");
    assert_null(doc.root);
}

static void cdoc_comment_only_is_empty_configuration(void **state)
{
    (void)state;
    assert_int_equal(load("# nothing here\n---\n"), GW_ECONFIG);
    expect_errors("t.yaml:1:1: empty configuration");
}

/* NESTED levels of flow sequences: "[[[...]]]". */
static char *nested(int levels)
{
    char *s = malloc((size_t)levels * 2 + 1);
    assert_non_null(s);
    memset(s, '[', (size_t)levels);
    memset(s + levels, ']', (size_t)levels);
    s[levels * 2] = '\0';
    return s;
}

static void cdoc_nesting_at_cap_accepted(void **state)
{
    (void)state;
    char *s = nested(64);
    assert_int_equal(load(s), 0);
    free(s);
}

static void cdoc_nesting_over_cap_rejected(void **state)
{
    (void)state;
    char *s = nested(65);
    assert_int_equal(load(s), GW_ECONFIG);
    free(s);
    expect_errors("t.yaml:1:65: nested deeper than 64 levels");
    assert_null(doc.root);
}

static void cdoc_node_cap_rejected(void **state)
{
    (void)state;
    /* "{a,a,...}": each "a," is a key and an empty value, two nodes in two bytes, so just
     * under the 1 MiB file cap there are more than 1,000,000 nodes. */
    size_t pairs = 510000, len = 2 + pairs * 2;
    char *s = malloc(len + 1);
    assert_non_null(s);
    s[0] = '{';
    for (size_t i = 0; i < pairs; i++)
        memcpy(s + 1 + 2 * i, "a,", 2);
    s[len - 1] = '}';
    s[len] = '\0';
    assert_int_equal(load(s), GW_ECONFIG);
    free(s);
    expect_errors("t.yaml:1:1000001: too many values in one file (limit 1000000)");
    assert_null(doc.root);
}

static void cdoc_file_size_cap_rejected(void **state)
{
    (void)state;
    size_t len = (1u << 20) + 1;
    char *s = malloc(len + 1);
    assert_non_null(s);
    memset(s, '#', len);
    s[len] = '\0';
    assert_int_equal(load(s), GW_ECONFIG);
    free(s);
    expect_errors("t.yaml:1:1: file is larger than 1 MiB");
}

static void cdoc_load_file_reads_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_cfgtree_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "a: 1\n", 5), 5);
    close(fd);
    assert_int_equal(gw_cdoc_load_file(&doc, path, 1), 0);
    unlink(path);
    assert_string_equal(doc.file, path);
    assert_string_equal(root_get("a")->str, "1");
}

static void cdoc_load_file_missing(void **state)
{
    (void)state;
    assert_int_equal(gw_cdoc_load_file(&doc, "/nonexistent/gw.yaml", 1), GW_ECONFIG);
    expect_errors("/nonexistent/gw.yaml:1:1: cannot open: No such file or directory");
}

static void cdoc_load_file_directory(void **state)
{
    (void)state;
    assert_int_equal(gw_cdoc_load_file(&doc, "/tmp", 1), GW_ECONFIG);
    expect_errors("/tmp:1:1: cannot read: Is a directory");
}

static void cdoc_error_without_node_is_at_start(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\n"), 0);
    gw_cdoc_error(&doc, NULL, "something %d", 42);
    expect_errors("t.yaml:1:1: something 42");
}

static void cdoc_error_count_capped(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\n"), 0);
    for (int i = 0; i < 150; i++)
        gw_cdoc_error(&doc, doc.root, "error %d", i);
    assert_int_equal(doc.nerrors, 101);
    assert_string_equal(doc.errors[99], "t.yaml:1:1: error 99");
    assert_string_equal(doc.errors[100], "t.yaml: too many errors, stopping here");
}

/* ---- lookups ------------------------------------------------------------------------ */

static void cmap_get_marks_used_and_remembers(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\nb: 2\n"), 0);
    assert_string_equal(root_get("b")->str, "2");
    assert_null(root_get("zz"));
    assert_false(doc.root->pairs[0].used);
    assert_true(doc.root->pairs[1].used);
    assert_int_equal(doc.root->nasked, 2);
    root_get("b"); /* asking twice remembers once */
    assert_int_equal(doc.root->nasked, 2);
}

static void cmap_get_on_non_map_is_null(void **state)
{
    (void)state;
    assert_int_equal(load("[1]\n"), 0);
    assert_null(gw_cmap_get(&doc, doc.root, "a"));
    assert_null(gw_cmap_require(&doc, doc.root, "a"));
    expect_no_errors();
}

static void cmap_require_missing_reported_at_map(void **state)
{
    (void)state;
    assert_int_equal(load("a:\n  b: 1\n"), 0);
    assert_null(gw_cmap_require(&doc, root_get("a"), "c"));
    expect_errors("t.yaml:2:3: missing required key 'c'");
}

static void cnode_expect_map_reports_type(void **state)
{
    (void)state;
    assert_int_equal(load("a: [1]\n"), 0);
    assert_false(gw_cnode_expect_map(&doc, root_get("a"), "a"));
    assert_true(gw_cnode_expect_map(&doc, doc.root, "root"));
    assert_false(gw_cnode_expect_map(&doc, NULL, "absent"));
    expect_errors("t.yaml:1:4: a must be a mapping (got a sequence)");
}

static void cnode_expect_seq_reports_type(void **state)
{
    (void)state;
    assert_int_equal(load("a: {}\nb:\n"), 0);
    assert_false(gw_cnode_expect_seq(&doc, root_get("a"), "a"));
    assert_false(gw_cnode_expect_seq(&doc, root_get("b"), "b"));
    expect_errors("t.yaml:1:4: a must be a sequence (got a mapping)",
                  "t.yaml:2:3: b must be a sequence (got nothing)");
}

/* ---- typed getters ------------------------------------------------------------------ */

static void cget_absent_node_keeps_default(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\n"), 0);
    uint64_t v = 7;
    bool b = true;
    char *s = NULL;
    assert_int_equal(gw_cget_uint(&doc, NULL, "x", 0, 10, &v), 0);
    assert_int_equal(gw_cget_bool(&doc, NULL, "x", &b), 0);
    assert_int_equal(gw_cget_string(&doc, NULL, "x", &s), 0);
    assert_int_equal(v, 7);
    assert_true(b);
    assert_null(s);
    expect_no_errors();
}

static void cget_uint_parses(void **state)
{
    (void)state;
    assert_int_equal(load("n: 42\n"), 0);
    uint64_t v = 0;
    assert_int_equal(gw_cget_uint(&doc, root_get("n"), "n", 1, 100, &v), 0);
    assert_int_equal(v, 42);
}

static void cget_uint_rejects_word(void **state)
{
    (void)state;
    assert_int_equal(load("n: two\n"), 0);
    uint64_t v = 5;
    assert_int_equal(gw_cget_uint(&doc, root_get("n"), "n", 1, 100, &v), GW_ECONFIG);
    assert_int_equal(v, 5);
    expect_errors("t.yaml:1:4: n must be an integer (got 'two')");
}

static void cget_uint_rejects_quoted(void **state)
{
    (void)state;
    assert_int_equal(load("n: \"8\"\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_uint(&doc, root_get("n"), "n", 1, 100, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: n must be an integer, without quotes (got \"8\")");
}

static void cget_uint_rejects_fraction(void **state)
{
    (void)state;
    assert_int_equal(load("n: 1.5\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_uint(&doc, root_get("n"), "n", 1, 100, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: n must be an integer (got '1.5')");
}

static void cget_uint_negative_is_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(load("n: -1\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_uint(&doc, root_get("n"), "n", 1, 100, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: n: -1 is out of range 1..100");
}

static void cget_uint_above_max_is_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(load("n: 101\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_uint(&doc, root_get("n"), "n", 1, 100, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: n: 101 is out of range 1..100");
}

static void cget_uint_overflow_is_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(load("n: 99999999999999999999999\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_uint(&doc, root_get("n"), "n", 0, 100, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: n: 99999999999999999999999 is out of range 0..100");
}

static void cget_bool_accepts_true_false(void **state)
{
    (void)state;
    assert_int_equal(load("a: true\nb: false\n"), 0);
    bool a = false, b = true;
    assert_int_equal(gw_cget_bool(&doc, root_get("a"), "a", &a), 0);
    assert_int_equal(gw_cget_bool(&doc, root_get("b"), "b", &b), 0);
    assert_true(a);
    assert_false(b);
}

static void cget_bool_rejects_yes(void **state)
{
    (void)state;
    assert_int_equal(load("a: yes\n"), 0);
    bool a;
    assert_int_equal(gw_cget_bool(&doc, root_get("a"), "a", &a), GW_ECONFIG);
    expect_errors("t.yaml:1:4: a must be true or false (got 'yes')");
}

static void cget_duration_units(void **state)
{
    (void)state;
    assert_int_equal(load("a: 250ms\nb: 5s\nc: 2m\nd: 1h\ne: '0s'\n"), 0);
    const char *keys[] = {"a", "b", "c", "d", "e"};
    const uint64_t want[] = {250, 5000, 120000, 3600000, 0};
    for (int i = 0; i < 5; i++) {
        uint64_t v = 1;
        assert_int_equal(gw_cget_duration(&doc, root_get(keys[i]), keys[i], 0, UINT64_MAX, &v), 0);
        assert_int_equal(v, want[i]);
    }
    expect_no_errors();
}

static void cget_duration_requires_unit(void **state)
{
    (void)state;
    assert_int_equal(load("d: 5\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_duration(&doc, root_get("d"), "d", 0, 1000, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: d must be a duration like 250ms, 5s, 2m or 1h (got '5')");
}

static void cget_duration_rejects_fraction_and_space(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1.5s\nb: 5 s\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_duration(&doc, root_get("a"), "a", 0, 1000, &v), GW_ECONFIG);
    assert_int_equal(gw_cget_duration(&doc, root_get("b"), "b", 0, 1000, &v), GW_ECONFIG);
    assert_int_equal(doc.nerrors, 2);
}

static void cget_duration_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(load("d: 2h\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_duration(&doc, root_get("d"), "d", 1, 3600000, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: d: 2h is out of range 1ms..1h");
}

static void cget_duration_overflow_is_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(load("d: 9999999999999999999h\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_duration(&doc, root_get("d"), "d", 0, 1000, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: d: 9999999999999999999h is out of range 0s..1s");
}

static void cget_size_units(void **state)
{
    (void)state;
    assert_int_equal(load("a: 64KiB\nb: 1MiB\nc: 2GiB\nd: 512\ne: 3B\nf: 1KB\ng: 2MB\nh: 1GB\n"),
                     0);
    const char *keys[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    const uint64_t want[] = {65536, 1048576, 2147483648u, 512, 3, 1000, 2000000, 1000000000};
    for (int i = 0; i < 8; i++) {
        uint64_t v = 0;
        assert_int_equal(gw_cget_size(&doc, root_get(keys[i]), keys[i], 0, UINT64_MAX, &v), 0);
        assert_int_equal(v, want[i]);
    }
}

static void cget_size_rejects_unknown_unit(void **state)
{
    (void)state;
    assert_int_equal(load("s: 64kb\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_size(&doc, root_get("s"), "s", 0, UINT64_MAX, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: s must be a size like 4096, 64KiB or 1MiB (got '64kb')");
}

static void cget_size_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(load("s: 2MiB\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_size(&doc, root_get("s"), "s", 1024, 1048576, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: s: 2MiB is out of range 1KiB..1MiB");
}

static void cget_size_overflow_is_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(load("s: 99999999999GiB\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_size(&doc, root_get("s"), "s", 0, 1024, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: s: 99999999999GiB is out of range 0..1KiB");
}

static void cget_percent_accepts_decimals(void **state)
{
    (void)state;
    assert_int_equal(load("a: 12.5\nb: 100\nc: 0\n"), 0);
    double a = -1, b = -1, c = -1;
    assert_int_equal(gw_cget_percent(&doc, root_get("a"), "a", &a), 0);
    assert_int_equal(gw_cget_percent(&doc, root_get("b"), "b", &b), 0);
    assert_int_equal(gw_cget_percent(&doc, root_get("c"), "c", &c), 0);
    assert_true(a == 12.5 && b == 100.0 && c == 0.0);
}

static void cget_percent_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(load("p: 100.5\n"), 0);
    double v;
    assert_int_equal(gw_cget_percent(&doc, root_get("p"), "p", &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: p: 100.5 is out of range 0..100");
}

static void cget_percent_rejects_exponent(void **state)
{
    (void)state;
    assert_int_equal(load("p: 1e2\n"), 0);
    double v;
    assert_int_equal(gw_cget_percent(&doc, root_get("p"), "p", &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: p must be a number 0..100 (got '1e2')");
}

static void cget_status_range_forms(void **state)
{
    (void)state;
    assert_int_equal(load("a: 200-299\nb: 404\n"), 0);
    unsigned lo = 0, hi = 0;
    assert_int_equal(gw_cget_status_range(&doc, root_get("a"), "a", &lo, &hi), 0);
    assert_true(lo == 200 && hi == 299);
    assert_int_equal(gw_cget_status_range(&doc, root_get("b"), "b", &lo, &hi), 0);
    assert_true(lo == 404 && hi == 404);
}

static void cget_status_range_rejects_reversed(void **state)
{
    (void)state;
    assert_int_equal(load("s: 299-200\n"), 0);
    unsigned lo, hi;
    assert_int_equal(gw_cget_status_range(&doc, root_get("s"), "s", &lo, &hi), GW_ECONFIG);
    expect_errors("t.yaml:1:4: s: 299-200 is empty (the first code must not exceed the second)");
}

static void cget_status_range_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(load("s: 200-600\n"), 0);
    unsigned lo, hi;
    assert_int_equal(gw_cget_status_range(&doc, root_get("s"), "s", &lo, &hi), GW_ECONFIG);
    expect_errors("t.yaml:1:4: s: 200-600 is out of range 100..599");
}

static void cget_status_range_rejects_pattern(void **state)
{
    (void)state;
    assert_int_equal(load("s: 2xx\n"), 0);
    unsigned lo, hi;
    assert_int_equal(gw_cget_status_range(&doc, root_get("s"), "s", &lo, &hi), GW_ECONFIG);
    expect_errors("t.yaml:1:4: s must be a status code or range (e.g. 200-299) (got '2xx')");
}

static const char *const colours[] = {"red", "green", "blue", NULL};

static void cget_enum_stores_index(void **state)
{
    (void)state;
    assert_int_equal(load("c: blue\n"), 0);
    int v = -1;
    assert_int_equal(gw_cget_enum(&doc, root_get("c"), "c", colours, &v), 0);
    assert_int_equal(v, 2);
}

static void cget_enum_lists_names(void **state)
{
    (void)state;
    assert_int_equal(load("c: pink\n"), 0);
    int v = -1;
    assert_int_equal(gw_cget_enum(&doc, root_get("c"), "c", colours, &v), GW_ECONFIG);
    assert_int_equal(v, -1);
    expect_errors("t.yaml:1:4: c must be one of: red, green, blue (got 'pink')");
}

static void cget_string_copies(void **state)
{
    (void)state;
    assert_int_equal(load("s: 'hello world'\n"), 0);
    char *s = NULL;
    assert_int_equal(gw_cget_string(&doc, root_get("s"), "s", &s), 0);
    assert_string_equal(s, "hello world");
    free(s);
}

static void cget_string_rejects_mapping(void **state)
{
    (void)state;
    assert_int_equal(load("s:\n  x: 1\n"), 0);
    char *s = NULL;
    assert_int_equal(gw_cget_string(&doc, root_get("s"), "s", &s), GW_ECONFIG);
    expect_errors("t.yaml:2:3: s must be a string (got a mapping)");
}

static void cget_string_rejects_null(void **state)
{
    (void)state;
    assert_int_equal(load("s:\n"), 0);
    char *s = NULL;
    assert_int_equal(gw_cget_string(&doc, root_get("s"), "s", &s), GW_ECONFIG);
    expect_errors("t.yaml:1:3: s must be a string (got nothing)");
}

static void cget_shows_long_values_shortened(void **state)
{
    (void)state;
    assert_int_equal(
        load("n: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_uint(&doc, root_get("n"), "n", 0, 1, &v), GW_ECONFIG);
    expect_errors("t.yaml:1:4: n must be an integer (got "
                  "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...')");
}

static void cget_addr_parses(void **state)
{
    (void)state;
    assert_int_equal(load("a: \"[::1]:80\"\n"), 0);
    gw_addr_t a;
    assert_int_equal(gw_cget_addr(&doc, root_get("a"), "a", &a), 0);
    assert_int_equal(gw_addr_port(&a), 80);
}

static void cget_addr_reports_reason(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1.2.3.4:0\n"), 0);
    gw_addr_t a;
    assert_int_equal(gw_cget_addr(&doc, root_get("a"), "a", &a), GW_ECONFIG);
    expect_errors("t.yaml:1:4: bad address '1.2.3.4:0': port 0 is not allowed (use 1..65535)");
}

static void cfmt_duration_largest_exact_unit(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(gw_cfmt_duration(0, b, sizeof(b)), "0s");
    assert_string_equal(gw_cfmt_duration(250, b, sizeof(b)), "250ms");
    assert_string_equal(gw_cfmt_duration(1500, b, sizeof(b)), "1500ms");
    assert_string_equal(gw_cfmt_duration(5000, b, sizeof(b)), "5s");
    assert_string_equal(gw_cfmt_duration(300000, b, sizeof(b)), "5m");
    assert_string_equal(gw_cfmt_duration(7200000, b, sizeof(b)), "2h");
}

static void cfmt_size_largest_exact_unit(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(gw_cfmt_size(0, b, sizeof(b)), "0");
    assert_string_equal(gw_cfmt_size(1000, b, sizeof(b)), "1000");
    assert_string_equal(gw_cfmt_size(16384, b, sizeof(b)), "16KiB");
    assert_string_equal(gw_cfmt_size(1048576, b, sizeof(b)), "1MiB");
    assert_string_equal(gw_cfmt_size((uint64_t)64 << 30, b, sizeof(b)), "64GiB");
}

/* ---- unused keys -------------------------------------------------------------------- */

static const gw_later_key_t later[] = {
    {"upstreams.*.balancer", 2},
    {"listeners.*.routes", 4},
    {"admin", 3},
    {NULL, 0},
};

static void check_unused_suggests_close_key(void **state)
{
    (void)state;
    assert_int_equal(load("wrkers: 2\n"), 0);
    root_get("workers");
    gw_cdoc_check_unused(&doc, later);
    expect_errors("t.yaml:1:1: unknown key 'wrkers' (did you mean 'workers'?)");
}

static void check_unused_no_suggestion_when_far(void **state)
{
    (void)state;
    assert_int_equal(load("colour: red\n"), 0);
    root_get("workers");
    gw_cdoc_check_unused(&doc, later);
    expect_errors("t.yaml:1:1: unknown key 'colour'");
}

static void check_unused_no_suggestion_for_tiny_keys(void **state)
{
    (void)state;
    assert_int_equal(load("ab: 1\n"), 0);
    root_get("xy");
    gw_cdoc_check_unused(&doc, later);
    expect_errors("t.yaml:1:1: unknown key 'ab'");
}

static void check_unused_later_key_with_star(void **state)
{
    (void)state;
    assert_int_equal(load("upstreams:\n  app:\n    balancer: rr\n"), 0);
    gw_cmap_get(&doc, root_get("upstreams"), "app");
    gw_cdoc_check_unused(&doc, later);
    expect_errors("t.yaml:3:5: balancer: needs gw02 or later");
}

static void check_unused_later_key_star_matches_index(void **state)
{
    (void)state;
    assert_int_equal(load("listeners:\n  - name: a\n  - routes: []\n"), 0);
    const gw_cnode_t *l = root_get("listeners");
    gw_cmap_get(&doc, l->items[0], "name");
    gw_cdoc_check_unused(&doc, later);
    expect_errors("t.yaml:3:5: routes: needs gw04 or later");
}

/* A value the caller reported itself: nothing inside it, at any depth and through
 * sequences, is reported again as unknown; its siblings still are. */
static void check_unused_skips_silenced_value(void **state)
{
    (void)state;
    assert_int_equal(load("bad:\n  a: 1\n  b:\n    - c: 2\n      d: {e: 3}\nstray: 1\n"), 0);
    gw_cnode_silence(root_get("bad"));
    gw_cdoc_check_unused(&doc, later);
    expect_errors("t.yaml:6:1: unknown key 'stray'");
}

static void check_unused_later_key_unknown_at_its_level(void **state)
{
    (void)state;
    assert_int_equal(load_level("admin: {}\n", 3), 0);
    gw_cdoc_check_unused(&doc, later);
    expect_errors("t.yaml:1:1: unknown key 'admin'");
}

static void check_unused_later_pattern_must_match_whole_path(void **state)
{
    (void)state;
    assert_int_equal(load("balancer: x\nadmin:\n"), 0);
    gw_cdoc_check_unused(&doc, later);
    expect_errors("t.yaml:1:1: unknown key 'balancer'", "t.yaml:2:1: admin: needs gw03 or later");
}

static void check_unused_does_not_descend_into_reported_key(void **state)
{
    (void)state;
    assert_int_equal(load("x:\n  y: 1\n  z: [ {w: 1} ]\n"), 0);
    gw_cdoc_check_unused(&doc, later);
    expect_errors("t.yaml:1:1: unknown key 'x'");
}

static void check_unused_descends_into_used_keys(void **state)
{
    (void)state;
    assert_int_equal(load("x:\n  - y: 1\n    z: 2\n"), 0);
    const gw_cnode_t *x = root_get("x");
    gw_cmap_get(&doc, x->items[0], "y");
    gw_cdoc_check_unused(&doc, NULL);
    expect_errors("t.yaml:3:5: unknown key 'z'");
}

static void check_unused_skips_value_of_wrong_type(void **state)
{
    (void)state;
    assert_int_equal(load("a:\n  b: 1\n  c: [ {d: 1} ]\n"), 0);
    uint64_t v;
    assert_int_equal(gw_cget_uint(&doc, root_get("a"), "a", 0, 1, &v), GW_ECONFIG);
    gw_cdoc_check_unused(&doc, NULL);
    expect_errors("t.yaml:2:3: a must be an integer (got a mapping)");
}

static void check_unused_quiet_when_all_used(void **state)
{
    (void)state;
    assert_int_equal(load("a: 1\nb: {c: 2}\n"), 0);
    root_get("a");
    gw_cmap_get(&doc, root_get("b"), "c");
    gw_cdoc_check_unused(&doc, later);
    expect_no_errors();
}

int main(void)
{
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        T(cdoc_builds_tree_with_positions),
        T(cdoc_scalar_null_and_quoted_flags),
        T(cdoc_many_items_grow),
        T(cdoc_syntax_error_position),
        T(cdoc_syntax_error_names_context),
        T(cdoc_syntax_error_tab_hint),
        T(cdoc_syntax_error_inside_nested_value_frees_partial_tree),
        T(cdoc_invalid_byte_position),
        T(cdoc_invalid_utf8_position),
        T(cdoc_duplicate_key_reported_and_first_kept),
        T(cdoc_duplicate_keys_reported_in_document_order),
        T(cdoc_duplicate_key_in_nested_flow_map),
        T(cdoc_anchor_and_alias_rejected),
        T(cdoc_alias_in_sequence_dropped),
        T(cdoc_tag_rejected),
        T(cdoc_second_document_rejected),
        T(cdoc_sequence_key_rejected),
        T(cdoc_mapping_key_with_mapping_value_rejected),
        T(cdoc_alias_key_with_mapping_value_rejected),
        T(cdoc_nul_character_rejected),
        T(cdoc_empty_text_is_empty_configuration),
        T(cdoc_comment_only_is_empty_configuration),
        T(cdoc_nesting_at_cap_accepted),
        T(cdoc_nesting_over_cap_rejected),
        T(cdoc_node_cap_rejected),
        T(cdoc_file_size_cap_rejected),
        T(cdoc_load_file_reads_file),
        T(cdoc_load_file_missing),
        T(cdoc_load_file_directory),
        T(cdoc_error_without_node_is_at_start),
        T(cdoc_error_count_capped),
        T(cmap_get_marks_used_and_remembers),
        T(cmap_get_on_non_map_is_null),
        T(cmap_require_missing_reported_at_map),
        T(cnode_expect_map_reports_type),
        T(cnode_expect_seq_reports_type),
        T(cget_absent_node_keeps_default),
        T(cget_uint_parses),
        T(cget_uint_rejects_word),
        T(cget_uint_rejects_quoted),
        T(cget_uint_rejects_fraction),
        T(cget_uint_negative_is_out_of_range),
        T(cget_uint_above_max_is_out_of_range),
        T(cget_uint_overflow_is_out_of_range),
        T(cget_bool_accepts_true_false),
        T(cget_bool_rejects_yes),
        T(cget_duration_units),
        T(cget_duration_requires_unit),
        T(cget_duration_rejects_fraction_and_space),
        T(cget_duration_out_of_range),
        T(cget_duration_overflow_is_out_of_range),
        T(cget_size_units),
        T(cget_size_rejects_unknown_unit),
        T(cget_size_out_of_range),
        T(cget_size_overflow_is_out_of_range),
        T(cget_percent_accepts_decimals),
        T(cget_percent_out_of_range),
        T(cget_percent_rejects_exponent),
        T(cget_status_range_forms),
        T(cget_status_range_rejects_reversed),
        T(cget_status_range_out_of_range),
        T(cget_status_range_rejects_pattern),
        T(cget_enum_stores_index),
        T(cget_enum_lists_names),
        T(cget_string_copies),
        T(cget_string_rejects_mapping),
        T(cget_string_rejects_null),
        T(cget_shows_long_values_shortened),
        T(cget_addr_parses),
        T(cget_addr_reports_reason),
        T(cfmt_duration_largest_exact_unit),
        T(cfmt_size_largest_exact_unit),
        T(check_unused_suggests_close_key),
        T(check_unused_no_suggestion_when_far),
        T(check_unused_no_suggestion_for_tiny_keys),
        T(check_unused_later_key_with_star),
        T(check_unused_later_key_star_matches_index),
        T(check_unused_skips_silenced_value),
        T(check_unused_later_key_unknown_at_its_level),
        T(check_unused_later_pattern_must_match_whole_path),
        T(check_unused_does_not_descend_into_reported_key),
        T(check_unused_descends_into_used_keys),
        T(check_unused_skips_value_of_wrong_type),
        T(check_unused_quiet_when_all_used),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
