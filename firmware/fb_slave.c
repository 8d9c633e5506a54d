/*
 * fb_slave.c -- see fb_slave.h. The order of the checks follows frames.slave.Slave and
 * firmware_sim.device.SimulatedDevice, because the shared vectors pin which error code wins:
 * unknown command (1) first, then a malformed payload (3), then, register by register in
 * address order, a missing or read-only register (2) or a value outside its limits (3).
 */
#include "fb_slave.h"

#include <string.h>

#define MAX_MODEL 64u

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] | (unsigned)p[1] << 8); /* little-endian, any alignment */
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

bool fb_slave_init(fb_slave *s, uint8_t address, const fb_identity *identity, fb_regs regs,
                   const fb_handler *handlers, size_t handler_count, uint32_t gap_ticks)
{
    if (s == NULL || address == FB_BROADCAST || gap_ticks == 0 ||
        (regs.count > 0 && (regs.defs == NULL || regs.values == NULL)) ||
        (handler_count > 0 && handlers == NULL)) {
        return false;
    }
    memset(s, 0, sizeof *s);
    s->address = address;
    s->identity = identity;
    s->regs = regs;
    s->handlers = handlers;
    s->handler_count = handler_count;
    s->gap_ticks = gap_ticks;
    fb_parser_init(&s->parser);
    return true;
}

int32_t fb_slave_find(const fb_slave *s, uint16_t address)
{
    /* Binary search: defs are sorted by address. */
    size_t lo = 0;
    size_t hi = s->regs.count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint16_t a = s->regs.defs[mid].address;
        if (a == address) {
            return (int32_t)mid;
        }
        if (a < address) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

/* Can `raw` be written to register `address`? FB_OK or the error code. */
static uint8_t check_write(const fb_slave *s, uint32_t address, uint16_t raw)
{
    int32_t i = address <= 0xFFFFu ? fb_slave_find(s, (uint16_t)address) : -1;
    const fb_reg_def *d;
    int32_t v;
    if (i < 0 || !(s->regs.defs[i].flags & FB_REG_WRITABLE)) {
        return FB_ILLEGAL_REGISTER;
    }
    d = &s->regs.defs[i];
    v = (d->flags & FB_REG_SIGNED) && raw >= 0x8000u ? (int32_t)raw - 0x10000 : (int32_t)raw;
    if (((d->flags & FB_REG_MIN) && v < d->min) || ((d->flags & FB_REG_MAX) && v > d->max)) {
        return FB_ILLEGAL_VALUE;
    }
    return FB_OK;
}

/* Write count words (little-endian at p) from start, all or nothing. */
static uint8_t write_words(fb_slave *s, uint16_t start, uint32_t count, const uint8_t *p)
{
    uint32_t k;
    for (k = 0; k < count; k++) {
        uint8_t err = check_write(s, (uint32_t)start + k, get_u16(p + 2 * k));
        if (err != FB_OK) {
            return err;
        }
    }
    for (k = 0; k < count; k++) {
        s->regs.values[fb_slave_find(s, (uint16_t)(start + k))] = get_u16(p + 2 * k);
    }
    return FB_OK;
}

static uint8_t identify(const fb_slave *s, const fb_frame *req, uint8_t *out, uint8_t *n)
{
    const fb_identity *id = s->identity;
    size_t len = strlen(id->model);
    if (req->len != 0) {
        return FB_ILLEGAL_VALUE;
    }
    if (len > MAX_MODEL) {
        len = MAX_MODEL;
    }
    if (len + 10u > FB_MAX_PAYLOAD) {
        return FB_DEVICE_FAILURE;
    }
    out[0] = (uint8_t)len;
    memcpy(out + 1, id->model, len);
    memcpy(out + 1 + len, id->firmware, 3);
    out[len + 4] = (uint8_t)(id->uid & 0xFFu);
    out[len + 5] = (uint8_t)(id->uid >> 8 & 0xFFu);
    out[len + 6] = (uint8_t)(id->uid >> 16 & 0xFFu);
    out[len + 7] = (uint8_t)(id->uid >> 24 & 0xFFu);
    put_u16(out + len + 8, s->regs.count);
    *n = (uint8_t)(len + 10u);
    return FB_OK;
}

static uint8_t read_regs(const fb_slave *s, const fb_frame *req, uint8_t *out, uint8_t *n)
{
    uint16_t start;
    uint32_t count;
    uint32_t k;
    if (req->len != 3 || req->data[2] < 1 || req->data[2] > FB_MAX_READ_COUNT) {
        return FB_ILLEGAL_VALUE;
    }
    start = get_u16(req->data);
    count = req->data[2];
    if (1u + 2u * count > FB_MAX_PAYLOAD) {
        return FB_DEVICE_FAILURE;
    }
    for (k = 0; k < count; k++) {
        uint32_t a = (uint32_t)start + k;
        int32_t i = a <= 0xFFFFu ? fb_slave_find(s, (uint16_t)a) : -1;
        if (i < 0) {
            return FB_ILLEGAL_REGISTER;
        }
        put_u16(out + 1 + 2 * k, s->regs.values[i]);
    }
    out[0] = (uint8_t)count;
    *n = (uint8_t)(1u + 2u * count);
    return FB_OK;
}

/* A standard command, or FB_ILLEGAL_COMMAND when this slave does not serve it. */
static uint8_t standard(fb_slave *s, const fb_frame *req, uint8_t *out, uint8_t *n)
{
    uint8_t err;
    switch (req->cmd) {
    case FB_CMD_IDENTIFY:
        return s->identity != NULL ? identify(s, req, out, n) : FB_ILLEGAL_COMMAND;
    case FB_CMD_ECHO:
        if (req->len > 0) {
            memcpy(out, req->data, req->len);
        }
        *n = req->len;
        return FB_OK;
    case FB_CMD_READ_REGS:
        return read_regs(s, req, out, n);
    case FB_CMD_WRITE_REG:
        if (req->len != 4) {
            return FB_ILLEGAL_VALUE;
        }
        err = write_words(s, get_u16(req->data), 1, req->data + 2);
        if (err == FB_OK) {
            memcpy(out, req->data, 4);
            *n = 4;
        }
        return err;
    case FB_CMD_WRITE_REGS:
        if (req->len < 3 || req->len != 3u + 2u * req->data[2]) {
            return FB_ILLEGAL_VALUE;
        }
        err = write_words(s, get_u16(req->data), req->data[2], req->data + 3);
        if (err == FB_OK) {
            memcpy(out, req->data, 3);
            *n = 3;
        }
        return err;
    default:
        return FB_ILLEGAL_COMMAND;
    }
}

size_t fb_slave_handle(fb_slave *s, const fb_frame *req, uint8_t *tx, size_t cap)
{
    uint8_t payload[FB_MAX_PAYLOAD > 0 ? FB_MAX_PAYLOAD : 1];
    uint8_t n = 0;
    uint8_t err;
    size_t i;
    bool custom = false;
    fb_frame reply;
    int32_t size;
    if ((req->addr != s->address && req->addr != FB_BROADCAST) || (req->cmd & FB_ERROR_FLAG)) {
        s->stats.ignored++;
        return 0;
    }
    s->stats.requests++;
    for (i = 0; i < s->handler_count; i++) {
        if (s->handlers[i].cmd == req->cmd) {
            err = s->handlers[i].fn(s, req, payload, &n, s->handlers[i].user);
#if FB_MAX_PAYLOAD < 255
            if (err == FB_OK && n > FB_MAX_PAYLOAD) {
                err = FB_DEVICE_FAILURE;
            }
#endif
            custom = true;
            break;
        }
    }
    if (!custom) {
        err = standard(s, req, payload, &n);
    }
    if (req->addr == FB_BROADCAST) {
        s->stats.broadcasts++;
        return 0;
    }
    reply.addr = s->address;
    reply.tag = req->tag;
    if (err == FB_OK) {
        reply.cmd = req->cmd;
        reply.len = n;
    } else {
        reply.cmd = (uint8_t)(req->cmd | FB_ERROR_FLAG);
        reply.len = 1;
        payload[0] = err;
    }
    reply.data = payload;
    size = fb_encode(&reply, tx, cap);
    if (size < 0) {
        s->stats.tx_overflows++;
        return 0;
    }
    if (err == FB_OK) {
        s->stats.replies++;
    } else {
        s->stats.error_replies++;
    }
    return (size_t)size;
}

/* Handle every frame the parser has ready (first one in *f), replies appended to tx. */
static size_t serve(fb_slave *s, bool have, fb_frame *f, uint8_t *tx, size_t cap)
{
    size_t used = 0;
    while (have) {
        used += fb_slave_handle(s, f, tx + used, cap - used);
        have = fb_parser_next(&s->parser, f);
    }
    return used;
}

size_t fb_slave_rx(fb_slave *s, uint8_t byte, uint8_t *tx, size_t cap)
{
    fb_frame f;
    bool have = fb_parser_feed(&s->parser, byte, &f);
    s->quiet = 0;
    return serve(s, have, &f, tx, cap);
}

size_t fb_slave_tick(fb_slave *s, uint8_t *tx, size_t cap)
{
    fb_frame f;
    size_t used = 0;
    bool have;
    if (s->quiet < s->gap_ticks) {
        s->quiet++;
    }
    if (s->quiet != s->gap_ticks || fb_parser_pending(&s->parser) == 0) {
        return 0;
    }
    s->quiet++; /* once per quiet spell: past gap_ticks until the next byte */
    have = fb_parser_idle(&s->parser, &f);
    while (have) {
        used += fb_slave_handle(s, &f, tx + used, cap - used);
        have = fb_parser_idle(&s->parser, &f);
    }
    return used;
}
