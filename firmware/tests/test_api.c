/*
 * The API's edges the vector tables do not reach: argument errors, the handler table, the
 * idle tick's timing, the counters for a caller that skips fb_parser_next(), a full TX buffer.
 */
#include <stdio.h>
#include <string.h>

#include "fb_slave.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                               \
    do {                                                                                          \
        checks++;                                                                                 \
        if (!(cond)) {                                                                            \
            failures++;                                                                           \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                \
        }                                                                                         \
    } while (0)

static size_t feed_all(fb_slave *s, const uint8_t *p, size_t n, uint8_t *tx, size_t cap)
{
    size_t used = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        used += fb_slave_rx(s, p[i], tx + used, cap - used);
    }
    return used;
}

static size_t wire(uint8_t addr, uint8_t cmd, const uint8_t *data, uint8_t len, uint8_t *out)
{
    fb_frame f;
    f.addr = addr;
    f.cmd = cmd;
    f.tag = 0x5A;
    f.len = len;
    f.data = data;
    return (size_t)fb_encode(&f, out, FB_MAX_FRAME);
}

static unsigned calls = 0;

static uint8_t custom(fb_slave *s, const fb_frame *req, uint8_t *reply, uint8_t *len, void *user)
{
    (void)s;
    calls++;
    if (req->len > 0 && req->data[0] == 0xEE) {
        return FB_BUSY;
    }
    reply[0] = *(const uint8_t *)user;
    *len = 1;
    return FB_OK;
}

static void test_encode_errors(void)
{
    uint8_t out[FB_MAX_FRAME];
    fb_frame f;
    memset(&f, 0, sizeof f);
    CHECK(fb_encode(NULL, out, sizeof out) == FB_ERR_ARGUMENT);
    CHECK(fb_encode(&f, NULL, sizeof out) == FB_ERR_ARGUMENT);
    f.len = 1; /* data NULL */
    CHECK(fb_encode(&f, out, sizeof out) == FB_ERR_ARGUMENT);
    f.len = 0;
    CHECK(fb_encode(&f, out, FB_MIN_FRAME - 1) == FB_ERR_SPACE);
    CHECK(fb_encode(&f, out, FB_MIN_FRAME) == FB_MIN_FRAME);
}

static void test_parser_counters(void)
{
    static fb_parser p;
    uint8_t a[FB_MAX_FRAME];
    uint8_t b[FB_MAX_FRAME];
    size_t na = wire(1, 2, (const uint8_t *)"x", 1, a);
    size_t nb = wire(1, 2, (const uint8_t *)"y", 1, b);
    size_t i;
    fb_frame f;
    int got = 0;
    fb_parser_init(&p);
    for (i = 0; i < na; i++) {
        got += fb_parser_feed(&p, a[i], &f);
    }
    CHECK(got == 1 && f.len == 1 && f.data[0] == 'x');
    /* The caller feeds again without fb_parser_next(): fine, nothing was waiting. */
    for (i = 0; i < nb; i++) {
        got += fb_parser_feed(&p, b[i], &f);
    }
    CHECK(got == 2 && p.stats.unread == 0 && p.stats.frames == 2);
    for (i = 0; i + 1 < na; i++) {
        (void)fb_parser_feed(&p, a[i], &f);
    }
    CHECK(fb_parser_pending(&p) == na - 1);
    fb_parser_reset(&p);
    CHECK(fb_parser_pending(&p) == 0 && p.stats.discarded_bytes == na - 1);
    CHECK(!fb_parser_idle(&p, &f));
}

static void test_slave(void)
{
    static const fb_reg_def defs[] = {{0, FB_REG_WRITABLE, 0, 0}};
    static const fb_identity id = {"API", {9, 8, 7}, 1};
    static fb_slave s;
    static const uint8_t marker = 0x77;
    uint16_t values[1] = {3};
    fb_handler handlers[2];
    fb_regs regs;
    uint8_t req[FB_MAX_FRAME];
    uint8_t tx[2 * FB_MAX_FRAME];
    size_t n;
    regs.defs = defs;
    regs.values = values;
    regs.count = 1;
    handlers[0].cmd = 0x42;
    handlers[0].fn = custom;
    handlers[0].user = (void *)(uintptr_t)&marker;
    handlers[1].cmd = FB_CMD_ECHO; /* overrides the standard echo */
    handlers[1].fn = custom;
    handlers[1].user = (void *)(uintptr_t)&marker;

    CHECK(!fb_slave_init(&s, 0, &id, regs, handlers, 2, 1));   /* broadcast address */
    CHECK(!fb_slave_init(&s, 3, &id, regs, handlers, 2, 0));   /* no gap */
    CHECK(!fb_slave_init(&s, 3, &id, regs, NULL, 2, 1));       /* handlers missing */
    regs.values = NULL;
    CHECK(!fb_slave_init(&s, 3, &id, regs, handlers, 2, 1));   /* values missing */
    regs.values = values;
    CHECK(fb_slave_init(&s, 3, &id, regs, handlers, 2, 3));

    n = feed_all(&s, req, wire(3, 0x42, NULL, 0, req), tx, sizeof tx);
    CHECK(n == FB_MIN_FRAME + 1u && tx[2] == 0x42 && tx[FB_HEADER_SIZE] == 0x77);
    CHECK(!FB_TAGGED || tx[3] == 0x5A); /* the tag is echoed */
    n = feed_all(&s, req, wire(3, FB_CMD_ECHO, (const uint8_t *)"\xEE", 1, req), tx, sizeof tx);
    CHECK(n == FB_MIN_FRAME + 1u && tx[2] == (FB_CMD_ECHO | FB_ERROR_FLAG) &&
          tx[FB_HEADER_SIZE] == FB_BUSY);
    n = feed_all(&s, req, wire(0, 0x42, NULL, 0, req), tx, sizeof tx); /* broadcast */
    CHECK(n == 0 && calls == 3 && s.stats.broadcasts == 1);
    n = feed_all(&s, req, wire(3, 0x42, NULL, 0, req), tx, 4); /* TX buffer too small */
    CHECK(n == 0 && s.stats.tx_overflows == 1);
    CHECK(s.stats.replies == 1 && s.stats.error_replies == 1 && s.stats.requests == 4);
    CHECK(fb_slave_find(&s, 0) == 0 && fb_slave_find(&s, 1) == -1);

    /* The gap: a partial request survives gap_ticks - 1 quiet ticks, not gap_ticks. */
    n = wire(3, FB_CMD_READ_REGS, (const uint8_t *)"\x00\x00\x01", 3, req);
    (void)feed_all(&s, req, n - 1, tx, sizeof tx);
    CHECK(fb_slave_tick(&s, tx, sizeof tx) == 0 && fb_slave_tick(&s, tx, sizeof tx) == 0);
    CHECK(fb_parser_pending(&s.parser) == n - 1);
    CHECK(fb_slave_tick(&s, tx, sizeof tx) == 0 && fb_parser_pending(&s.parser) == 0);
    CHECK(s.parser.stats.abandoned == 1);
    /* ... and a byte restarts the count. */
    (void)feed_all(&s, req, 3, tx, sizeof tx);
    CHECK(fb_slave_tick(&s, tx, sizeof tx) == 0 && fb_slave_tick(&s, tx, sizeof tx) == 0);
    n = feed_all(&s, req + 3, wire(3, FB_CMD_READ_REGS, (const uint8_t *)"\x00\x00\x01", 3, req) - 3,
                 tx, sizeof tx);
    CHECK(n == FB_MIN_FRAME + 3u && tx[FB_HEADER_SIZE] == 1 && tx[FB_HEADER_SIZE + 1] == 3);
}

int main(void)
{
    test_encode_errors();
    test_parser_counters();
    test_slave();
    printf("api: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
