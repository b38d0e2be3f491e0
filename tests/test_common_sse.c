/* test_common_sse.c -- the SSE parser against hand-written streams, fed in every split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/sse.h"

struct seen {
    char log[4096];
    size_t n;
};

static int collect(const char *event, const char *data, size_t len, const char *id, void *arg)
{
    struct seen *s = arg;
    size_t off = strlen(s->log);
    snprintf(s->log + off, sizeof s->log - off, "[%s|%.*s|%s]", event, (int)len, data,
             id ? id : "-");
    s->n++;
    return 0;
}

/* Feeds text split at every position (and byte by byte) and expects the same log. */
static void expect_events(const char *text, const char *want, size_t nwant)
{
    size_t len = strlen(text), cut;
    for (cut = 0; cut <= len; cut++) {
        struct seen s = {{0}, 0};
        char err[128];
        struct sse_parser *p = sse_parser_new(0, collect, &s);
        assert_non_null(p);
        assert_int_equal(sse_parser_feed(p, text, cut, err, sizeof err), 0);
        assert_int_equal(sse_parser_feed(p, text + cut, len - cut, err, sizeof err), 0);
        assert_string_equal(s.log, want);
        assert_int_equal(s.n, nwant);
        sse_parser_free(p);
    }
    {
        struct seen s = {{0}, 0};
        char err[128];
        size_t i;
        struct sse_parser *p = sse_parser_new(0, collect, &s);
        for (i = 0; i < len; i++) assert_int_equal(sse_parser_feed(p, text + i, 1, err, sizeof err), 0);
        assert_string_equal(s.log, want);
        sse_parser_free(p);
    }
}

static void openai_stream(void **state)
{
    (void)state;
    expect_events("data: {\"a\":1}\n\ndata: [DONE]\n\n", "[message|{\"a\":1}|-][message|[DONE]|-]", 2);
}

static void anthropic_stream_crlf(void **state)
{
    (void)state;
    expect_events("event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
                  "event: message_stop\rdata: {}\r\r",
                  "[ping|{\"type\": \"ping\"}|-][message_stop|{}|-]", 2);
}

static void multiline_comments_ids(void **state)
{
    (void)state;
    expect_events(": keep-alive\n\nid: 7\ndata: one\ndata:two\n\nevent: x\n\n",
                  "[message|one\ntwo|7]", 1);
}

static void bound_enforced(void **state)
{
    struct seen s = {{0}, 0};
    char err[128] = "";
    char big[300];
    struct sse_parser *p = sse_parser_new(256, collect, &s);
    (void)state;
    memset(big, 'x', sizeof big);
    assert_int_equal(sse_parser_feed(p, "data: ", 6, err, sizeof err), 0);
    assert_int_equal(sse_parser_feed(p, big, sizeof big, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than 256"));
    sse_parser_free(p);
}

static void pending_after_cut(void **state)
{
    struct seen s = {{0}, 0};
    char err[128];
    struct sse_parser *p = sse_parser_new(0, collect, &s);
    (void)state;
    assert_int_equal(sse_parser_feed(p, "data: {\"a\":1}\n\ndata: {\"b\"", 26, err, sizeof err), 0);
    assert_int_equal(sse_parser_events(p), 1);
    assert_true(sse_parser_pending(p) > 0);
    sse_parser_free(p);
}

static void writer_round_trip(void **state)
{
    struct buf b;
    struct seen s = {{0}, 0};
    char err[128];
    struct sse_parser *p = sse_parser_new(0, collect, &s);
    (void)state;
    buf_init(&b, 0);
    assert_int_equal(sse_write(&b, NULL, "{\"x\":1}", 7), 0);
    assert_int_equal(sse_write(&b, "error", "line1\nline2", 11), 0);
    assert_string_equal(b.data, "data: {\"x\":1}\n\nevent: error\ndata: line1\ndata: line2\n\n");
    assert_int_equal(sse_parser_feed(p, b.data, b.len, err, sizeof err), 0);
    assert_string_equal(s.log, "[message|{\"x\":1}|-][error|line1\nline2|-]");
    sse_parser_free(p);
    buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(openai_stream),          cmocka_unit_test(anthropic_stream_crlf),
        cmocka_unit_test(multiline_comments_ids), cmocka_unit_test(bound_enforced),
        cmocka_unit_test(pending_after_cut),      cmocka_unit_test(writer_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
