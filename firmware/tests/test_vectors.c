/*
 * The shared vectors (tests/vectors/ JSON files, through the generated vectors.h) against the C
 * library: CRC check values, encode/decode of single frames, streams fed one byte at a time
 * with idle gaps (frames and counters), slave request -> reply steps, malformed payloads.
 * Prints one line per failure and a summary; exit status 1 on any failure.
 */
#include <stdio.h>
#include <string.h>

#include "fb_slave.h"
#include "vectors.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        checks++;                                                                                 \
        if (!(cond)) {                                                                            \
            failures++;                                                                           \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                           \
            printf(__VA_ARGS__);                                                                  \
            printf("\n");                                                                         \
        }                                                                                         \
    } while (0)

static int same_frame(const fb_frame *got, const vec_frame *want)
{
    return got->addr == want->addr && got->cmd == want->cmd && got->len == want->len &&
           (!FB_TAGGED || got->tag == want->tag) &&
           (want->len == 0 || memcmp(got->data, want->data, want->len) == 0);
}

static void test_crc(void)
{
    static const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
    size_t i;
    for (i = 0; i < n_crc_checks; i++) {
        CHECK(fb_crc16(FB_CRC_INIT, check, sizeof check) == crc_checks[i], "crc check value");
    }
}

static void test_frames(void)
{
    size_t i;
    for (i = 0; i < n_frame_vectors; i++) {
        const vec_frame *v = &frame_vectors[i];
        uint8_t out[FB_MAX_FRAME];
        fb_frame f;
        fb_parser p;
        size_t k;
        int found = 0;
        int32_t n;
        f.addr = v->addr;
        f.cmd = v->cmd;
        f.tag = v->tag;
        f.len = (uint8_t)v->len;
        f.data = v->data;
        n = fb_encode(&f, out, sizeof out);
        CHECK(n == (int32_t)v->wire_len && memcmp(out, v->wire, v->wire_len) == 0,
              "encode: %s", v->desc);
        CHECK(fb_encode(&f, out, v->wire_len - 1) == FB_ERR_SPACE, "encode, short buffer");
        fb_parser_init(&p);
        for (k = 0; k < v->wire_len; k++) {
            fb_frame got;
            if (fb_parser_feed(&p, v->wire[k], &got)) {
                found++;
                CHECK(k == v->wire_len - 1 && same_frame(&got, v), "decode: %s", v->desc);
            }
        }
        CHECK(found == 1 && fb_parser_pending(&p) == 0, "decode once: %s", v->desc);
    }
}

static void test_streams(void)
{
    size_t i;
    for (i = 0; i < n_stream_vectors; i++) {
        const vec_stream *v = &stream_vectors[i];
        static fb_parser p; /* static: a 260-byte parser is fine on the stack too */
        size_t got = 0;
        size_t c;
        int ok = 1;
        fb_frame f;
        fb_parser_init(&p);
        for (c = 0; c <= v->nchunks; c++) {
            int idle = c == v->nchunks || v->chunks[c].len < 0;
            bool have;
            int32_t k;
            if (idle) {
                for (have = fb_parser_idle(&p, &f); have; have = fb_parser_idle(&p, &f)) {
                    ok &= got < v->nframes && same_frame(&f, &v->frames[got]);
                    got++;
                }
                continue;
            }
            for (k = 0; k < v->chunks[c].len; k++) {
                for (have = fb_parser_feed(&p, v->chunks[c].bytes[k], &f); have;
                     have = fb_parser_next(&p, &f)) {
                    ok &= got < v->nframes && same_frame(&f, &v->frames[got]);
                    got++;
                }
            }
        }
        CHECK(ok && got == v->nframes, "stream frames (%u of %u): %s", (unsigned)got,
              (unsigned)v->nframes, v->desc);
        CHECK(p.stats.frames == v->stats[0] && p.stats.crc_errors == v->stats[1] &&
                  p.stats.length_errors == v->stats[2] && p.stats.abandoned == v->stats[3] &&
                  p.stats.discarded_bytes == v->stats[4] && p.stats.unread == 0,
              "stream stats (got %lu %lu %lu %lu %lu): %s", (unsigned long)p.stats.frames,
              (unsigned long)p.stats.crc_errors, (unsigned long)p.stats.length_errors,
              (unsigned long)p.stats.abandoned, (unsigned long)p.stats.discarded_bytes, v->desc);
    }
}

static void test_devices(void)
{
    size_t i;
    for (i = 0; i < n_device_vectors; i++) {
        const vec_device *d = &device_vectors[i];
        static fb_slave s;
        fb_identity id;
        fb_regs regs;
        size_t k;
        memcpy(d->values, d->initial, d->nregs * sizeof d->values[0]);
        id.model = d->model;
        memcpy(id.firmware, d->firmware, 3);
        id.uid = d->uid;
        regs.defs = d->defs;
        regs.values = d->values;
        regs.count = d->nregs;
        CHECK(fb_slave_init(&s, d->address, &id, regs, NULL, 0, 1), "init");
        for (k = 0; k < d->nsteps; k++) {
            const vec_step *st = &d->steps[k];
            uint8_t tx[4 * FB_MAX_FRAME];
            size_t n = 0;
            size_t b;
            for (b = 0; b < st->req_len; b++) {
                n += fb_slave_rx(&s, st->req[b], tx + n, sizeof tx - n);
            }
            n += fb_slave_tick(&s, tx + n, sizeof tx - n); /* the inter-frame gap */
            n += fb_slave_tick(&s, tx + n, sizeof tx - n);
            CHECK(n == st->reply_len && memcmp(tx, st->reply, n) == 0, "slave %s: %s", d->desc,
                  st->desc);
            CHECK(fb_parser_pending(&s.parser) == 0, "slave holds no bytes after the gap");
        }
    }
}

static void test_bad_payloads(void)
{
    static const fb_reg_def defs[] = {{0, FB_REG_WRITABLE, 0, 0}, {1, FB_REG_WRITABLE, 0, 0}};
    uint16_t values[2] = {0, 0};
    static const fb_identity id = {"X", {0, 0, 0}, 0};
    fb_regs regs;
    size_t i;
    static fb_slave s;
    regs.defs = defs;
    regs.values = values;
    regs.count = 2;
    fb_slave_init(&s, 1, &id, regs, NULL, 0, 1);
    for (i = 0; i < n_bad_payloads; i++) {
        fb_frame req;
        uint8_t tx[FB_MAX_FRAME];
        size_t n;
        req.addr = 1;
        req.cmd = bad_payloads[i].cmd;
        req.tag = 0;
        req.len = (uint8_t)bad_payloads[i].len;
        req.data = bad_payloads[i].data;
        n = fb_slave_handle(&s, &req, tx, sizeof tx);
        CHECK(n == (size_t)FB_MIN_FRAME + 1 && tx[2] == (req.cmd | FB_ERROR_FLAG) &&
                  tx[FB_HEADER_SIZE] == FB_ILLEGAL_VALUE,
              "malformed payload for cmd %u gets code 3", (unsigned)req.cmd);
    }
}

int main(void)
{
    test_crc();
    test_frames();
    test_streams();
    test_devices();
    test_bad_payloads();
    printf("vectors: %d checks, %d failed (frames %u, streams %u, devices %u, payloads %u, "
           "%u skipped for this configuration)\n",
           checks, failures, (unsigned)n_frame_vectors, (unsigned)n_stream_vectors,
           (unsigned)n_device_vectors, (unsigned)n_bad_payloads, (unsigned)n_skipped);
    return failures ? 1 : 0;
}
