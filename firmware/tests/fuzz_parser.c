/*
 * Fuzz harness for the parser and the slave: any bytes, any idle gaps, never a crash, an
 * out-of-bounds access (ASan), undefined behaviour (UBSan) or a broken invariant (abort):
 *   - at most FB_MAX_FRAME bytes are held; after an idle gap none are;
 *   - every frame handed out re-encodes to bytes that parse back to the same frame;
 *   - the counters account for every byte: frames' bytes + discarded == bytes fed (after idle).
 * Built two ways: with clang -fsanitize=fuzzer (FB_LIBFUZZER) for a bounded libFuzzer run, and
 * as a plain program (gcc or clang, under ASan+UBSan) that runs a corpus: the stream vectors
 * plus 3000 generated inputs, and with a DIR argument writes them there as libFuzzer's seeds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_slave.h"
#include "vectors.h"

#define IDLE_MARK 0x00u /* in the input after a 0x00 0x00 pair: the line goes idle */

static void check_frame(const fb_frame *f)
{
    uint8_t wire[FB_MAX_FRAME];
    fb_parser q;
    fb_frame g;
    int32_t n = fb_encode(f, wire, sizeof wire);
    int32_t k;
    int found = 0;
    if (n != (int32_t)(FB_MIN_FRAME + f->len)) {
        abort();
    }
    fb_parser_init(&q);
    for (k = 0; k < n; k++) {
        if (fb_parser_feed(&q, wire[k], &g)) {
            found = g.addr == f->addr && g.cmd == f->cmd && g.len == f->len && g.tag == f->tag &&
                    memcmp(g.data, f->data, f->len) == 0;
        }
    }
    if (!found) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fb_parser p;
    static fb_slave s;
    static const fb_reg_def defs[] = {
        {0, FB_REG_WRITABLE | FB_REG_SIGNED | FB_REG_MIN | FB_REG_MAX, -100, 100},
        {1, FB_REG_WRITABLE, 0, 0},
        {7, 0, 0, 0},
    };
    static const fb_identity id = {"FUZZ", {1, 2, 3}, 42};
    uint16_t values[3] = {0, 1, 2};
    fb_regs regs;
    uint32_t framed = 0;
    size_t i;
    fb_frame f;
    bool have;
    regs.defs = defs;
    regs.values = values;
    regs.count = 3;
    fb_parser_init(&p);
    if (!fb_slave_init(&s, 1, &id, regs, NULL, 0, 1)) {
        abort();
    }
    for (i = 0; i < size; i++) {
        uint8_t tx[4 * FB_MAX_FRAME];
        if (i > 0 && data[i] == IDLE_MARK && data[i - 1] == IDLE_MARK) {
            for (have = fb_parser_idle(&p, &f); have; have = fb_parser_idle(&p, &f)) {
                check_frame(&f);
                framed += FB_MIN_FRAME + f.len;
            }
            if (fb_parser_pending(&p) != 0) {
                abort();
            }
            (void)fb_slave_tick(&s, tx, sizeof tx);
            (void)fb_slave_tick(&s, tx, sizeof tx);
        }
        for (have = fb_parser_feed(&p, data[i], &f); have; have = fb_parser_next(&p, &f)) {
            check_frame(&f);
            framed += FB_MIN_FRAME + f.len;
        }
        if (fb_parser_pending(&p) > FB_MAX_FRAME) {
            abort();
        }
        (void)fb_slave_rx(&s, data[i], tx, sizeof tx);
    }
    for (have = fb_parser_idle(&p, &f); have; have = fb_parser_idle(&p, &f)) {
        check_frame(&f);
        framed += FB_MIN_FRAME + f.len;
    }
    if (fb_parser_pending(&p) != 0 || framed + p.stats.discarded_bytes != (uint32_t)size) {
        abort();
    }
    return 0;
}

#ifndef FB_LIBFUZZER
static uint32_t rng = 2463534242u;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* A corpus input: frames (some corrupted, some cut), start-byte noise, idle marks. */
static size_t generate(uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (n + FB_MAX_FRAME + 8 < cap && next() % 64 != 0) {
        uint32_t r = next() % 10;
        if (r < 5) {
            uint8_t payload[FB_MAX_PAYLOAD > 0 ? FB_MAX_PAYLOAD : 1];
            fb_frame f;
            int32_t k;
            size_t j;
            f.addr = (uint8_t)(next() % 3);
            static const uint8_t cmds[] = {1, 2, 3, 6, 0x10};
            f.cmd = next() % 4 == 0 ? (uint8_t)next() : cmds[next() % 5];
            f.tag = (uint8_t)next();
            f.len = (uint8_t)(next() % (FB_MAX_PAYLOAD < 24 ? FB_MAX_PAYLOAD + 1 : 24));
            for (j = 0; j < f.len; j++) {
                payload[j] = (uint8_t)(j < 3 ? next() % 4 : next());
            }
            f.data = payload;
            k = fb_encode(&f, out + n, cap - n);
            if (k > 0) {
                if (next() % 5 == 0) {
                    out[n + next() % (uint32_t)k] ^= (uint8_t)(1u << next() % 8);
                }
                n += next() % 10 == 0 ? next() % (uint32_t)k : (uint32_t)k;
            }
        } else if (r < 7) {
            out[n++] = (uint8_t)FB_START;
            out[n++] = (uint8_t)next();
        } else if (r < 9) {
            out[n++] = (uint8_t)next();
        } else {
            out[n++] = IDLE_MARK;
            out[n++] = IDLE_MARK;
        }
    }
    return n;
}

static void run(const uint8_t *data, size_t n, const char *dir, unsigned index)
{
    LLVMFuzzerTestOneInput(data, n);
    if (dir != NULL) {
        char path[512];
        FILE *fp;
        snprintf(path, sizeof path, "%s/seed%04u", dir, index);
        fp = fopen(path, "wb");
        if (fp == NULL || fwrite(data, 1, n, fp) != n) {
            perror(path);
            exit(1);
        }
        fclose(fp);
    }
}

int main(int argc, char **argv)
{
    static uint8_t buf[8192];
    const char *dir = argc > 1 ? argv[1] : NULL;
    unsigned count = 0;
    size_t i;
    for (i = 0; i < n_stream_vectors; i++) {
        const vec_stream *v = &stream_vectors[i];
        size_t n = 0;
        size_t c;
        for (c = 0; c < v->nchunks; c++) {
            int32_t len = v->chunks[c].len;
            if (len < 0) {
                buf[n++] = IDLE_MARK;
                buf[n++] = IDLE_MARK;
            } else if (n + (size_t)len <= sizeof buf - 2) {
                memcpy(buf + n, v->chunks[c].bytes, (size_t)len);
                n += (size_t)len;
            }
        }
        run(buf, n, dir, count++);
    }
    for (i = 0; i < 3000; i++) {
        run(buf, generate(buf, sizeof buf), dir, count++);
    }
    printf("fuzz corpus: %u inputs, no crash, invariants held\n", count);
    return 0;
}
#endif
