/*
 * fb_slave.h -- a framebridge slave in C99: address filter, broadcast, handler table, the
 * standard commands over the application's register array, error replies, inter-frame gap.
 *
 * This header is the whole API of fb_slave.c (it needs fb_frame.c). It behaves as the host's
 * frames.slave.Slave serving firmware_sim's register logic (tests/vectors/slave.json is run by
 * both suites):
 *   - a request is a frame for this address or broadcast (0), and not an error frame
 *     (cmd & 0x80): other frames are ignored;
 *   - a broadcast runs its handler and is never answered;
 *   - the reply carries the slave's address, the request's cmd (and tag, FB_TAGGED);
 *   - an error reply is cmd | 0x80 with one byte: 1 illegal command, 2 illegal register,
 *     3 illegal value (bad payload or out of limits), 4 device failure, 5 busy;
 *   - writes are all-or-nothing: WRITE_REGS checks every register before changing any.
 *
 * No malloc, no globals: the application owns the fb_slave, its register arrays and its
 * handler table, all of which must outlive it.
 *
 * Porting in four lines (see README.md):
 *     UART RX interrupt:  n = fb_slave_rx(&slave, byte, tx, sizeof tx);  if (n) start_tx(tx, n);
 *     timer tick:         n = fb_slave_tick(&slave, tx, sizeof tx);      if (n) start_tx(tx, n);
 */
#ifndef FB_SLAVE_H
#define FB_SLAVE_H

#include "fb_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Standard command codes. */
#define FB_CMD_IDENTIFY 0x01u
#define FB_CMD_ECHO 0x02u
#define FB_CMD_READ_REGS 0x03u
#define FB_CMD_WRITE_REG 0x06u
#define FB_CMD_WRITE_REGS 0x10u
#define FB_MAX_READ_COUNT 120u

/* Error codes of an error reply. */
#define FB_OK 0u
#define FB_ILLEGAL_COMMAND 1u
#define FB_ILLEGAL_REGISTER 2u
#define FB_ILLEGAL_VALUE 3u
#define FB_DEVICE_FAILURE 4u
#define FB_BUSY 5u

/* Register flags. */
#define FB_REG_WRITABLE 0x01u /* WRITE_REG/WRITE_REGS may change it */
#define FB_REG_SIGNED 0x02u   /* min/max compare the word as i16 (two's complement) */
#define FB_REG_MIN 0x04u      /* min applies */
#define FB_REG_MAX 0x08u      /* max applies */

/* One register of the map (usually const, in flash). min/max are raw integers: the
 * engineering limit divided by the scale (fb-codegen writes them so). */
typedef struct {
    uint16_t address;
    uint8_t flags;
    int32_t min;
    int32_t max;
} fb_reg_def;

/* The register map: defs sorted by address (gaps allowed) and one value per def. */
typedef struct {
    const fb_reg_def *defs;
    uint16_t *values;
    uint16_t count;
} fb_regs;

/* IDENTIFY's answer. model: ASCII, at most 64 bytes are sent. */
typedef struct {
    const char *model;
    uint8_t firmware[3];
    uint32_t uid;
} fb_identity;

struct fb_slave;

/* An application command. req is the request (req->data: req->len bytes). Write the reply
 * payload to reply[0..FB_MAX_PAYLOAD) and its length to *reply_len (it starts at 0). Return
 * FB_OK, or an error code (1..127) to send an error reply instead. Called for broadcasts too
 * (req->addr == FB_BROADCAST): the reply is then not sent. */
typedef uint8_t (*fb_handler_fn)(struct fb_slave *s, const fb_frame *req, uint8_t *reply,
                                 uint8_t *reply_len, void *user);

typedef struct {
    uint8_t cmd; /* 0x00..0x7F; an entry overrides a standard command with the same code */
    fb_handler_fn fn;
    void *user;
} fb_handler;

typedef struct {
    uint32_t requests;      /* frames for this address or broadcast, handled */
    uint32_t replies;       /* normal replies produced */
    uint32_t error_replies; /* error replies produced */
    uint32_t broadcasts;
    uint32_t ignored;       /* frames for other addresses and error frames */
    uint32_t tx_overflows;  /* replies dropped because the caller's tx buffer was too small */
} fb_slave_stats;

/* One slave address. Fill it with fb_slave_init(); treat the fields as read-only after. */
typedef struct fb_slave {
    uint8_t address;
    const fb_identity *identity; /* NULL: IDENTIFY answers "illegal command" */
    fb_regs regs;                /* count 0: READ/WRITE answer "illegal register" */
    const fb_handler *handlers;
    size_t handler_count;
    uint32_t gap_ticks;  /* quiet ticks that end a partial frame (>= 1) */
    uint32_t quiet;      /* ticks since the last byte */
    fb_parser parser;
    fb_slave_stats stats;
} fb_slave;

/* Set up s. address 1..255 (0 is broadcast); gap_ticks >= 1: fb_slave_tick() calls after the
 * last byte that mean "the line went idle" (e.g. 1 tick of 1 ms at 115200 baud: 3.5 characters
 * take 0.3 ms). identity may be NULL; regs.defs/values may be NULL if regs.count is 0; handlers
 * may be NULL if handler_count is 0. Returns false (s unusable) for an argument out of range. */
bool fb_slave_init(fb_slave *s, uint8_t address, const fb_identity *identity, fb_regs regs,
                   const fb_handler *handlers, size_t handler_count, uint32_t gap_ticks);

/* The reply to one request frame, encoded into tx[0..cap). Returns its size, or 0 when there
 * is nothing to send (not for us, broadcast, or cap too small: counted in tx_overflows).
 * cap >= FB_MAX_FRAME always suffices. */
size_t fb_slave_handle(fb_slave *s, const fb_frame *req, uint8_t *tx, size_t cap);

/* Feed one received byte; returns the number of reply bytes written to tx[0..cap) (usually 0;
 * a frame completed by this byte may produce one reply). Resets the gap timer. */
size_t fb_slave_rx(fb_slave *s, uint8_t byte, uint8_t *tx, size_t cap);

/* Call at a fixed rate. After gap_ticks quiet ticks the partial frame, if any, is given up
 * (as StreamDecoder.flush()); returns reply bytes written to tx, as fb_slave_rx(). */
size_t fb_slave_tick(fb_slave *s, uint8_t *tx, size_t cap);

/* The register's index in s->regs, or -1 when the map has no such address. */
int32_t fb_slave_find(const fb_slave *s, uint16_t address);

#ifdef __cplusplus
}
#endif
#endif /* FB_SLAVE_H */
