/*
 * fb_frame.h -- the framebridge frame in C99: CRC, encoder and a byte-at-a-time stream parser.
 *
 * This header is the whole API of fb_frame.c. The frame (docs/protocol.md):
 *
 *     start | addr | cmd | [tag] | len | data[len] | crc16
 *
 * CRC-16/MODBUS over addr..data (or start..data), sent little-endian by default.
 *
 * Design (after libcanard): no malloc (the application owns every object), no globals beyond
 * one const CRC table, bounded time per byte, nothing beyond the C standard library. Every
 * function documents its preconditions and what it returns on bad arguments.
 *
 * The parser follows the host's StreamDecoder (frames/stream.py) exactly, so both ends agree
 * on which frames a noisy stream holds (tests/vectors/streams.json is run by both suites):
 *   - a candidate starts at a start byte; a declared length above FB_MAX_PAYLOAD, a CRC
 *     mismatch, or abandoning it drops ONLY the start byte and the search resumes at the
 *     next byte, so an intact frame after noise is never lost;
 *   - lookahead (FB_LOOKAHEAD): an incomplete candidate is abandoned as soon as a complete,
 *     CRC-valid frame has arrived after it (a stray start byte with a bogus length cannot hide
 *     the frames behind it);
 *   - fb_parser_idle(), which the application calls when the line has been quiet for an
 *     inter-frame gap, abandons whatever is incomplete.
 *
 * Compile-time settings (define them on the compiler command line, the same for every file):
 *   FB_START             start byte                                   (0xAA)
 *   FB_CRC_BIG_ENDIAN    1: the CRC is sent high byte first           (0: little-endian)
 *   FB_CRC_COVERS_START  1: the CRC covers the start byte too         (0)
 *   FB_TAGGED            1: the transaction-tag variant: a tag byte between cmd and len,
 *                        covered by the CRC; a slave echoes it         (0)
 *   FB_MAX_PAYLOAD       longest payload accepted, 0..255              (255)
 *   FB_CRC_TABLE         1: 512-byte table in flash, 0: bit-wise (8 shifts a byte)   (1)
 *   FB_LOOKAHEAD         1: the lookahead rule above; 0: rely on fb_parser_idle()    (1)
 */
#ifndef FB_FRAME_H
#define FB_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef FB_START
#define FB_START 0xAAu
#endif
#ifndef FB_CRC_BIG_ENDIAN
#define FB_CRC_BIG_ENDIAN 0
#endif
#ifndef FB_CRC_COVERS_START
#define FB_CRC_COVERS_START 0
#endif
#ifndef FB_TAGGED
#define FB_TAGGED 0
#endif
#ifndef FB_MAX_PAYLOAD
#define FB_MAX_PAYLOAD 255
#endif
#ifndef FB_CRC_TABLE
#define FB_CRC_TABLE 1
#endif
#ifndef FB_LOOKAHEAD
#define FB_LOOKAHEAD 1
#endif

#if FB_MAX_PAYLOAD < 0 || FB_MAX_PAYLOAD > 255
#error "FB_MAX_PAYLOAD must be 0..255 (the length field is one byte)"
#endif

#define FB_BROADCAST 0u        /* address every slave acts on and none answers */
#define FB_ERROR_FLAG 0x80u    /* set in cmd by an error reply */
#define FB_HEADER_SIZE (4 + (FB_TAGGED ? 1 : 0)) /* start, addr, cmd, [tag], len */
#define FB_CRC_SIZE 2
#define FB_MIN_FRAME (FB_HEADER_SIZE + FB_CRC_SIZE)
#define FB_MAX_FRAME (FB_MIN_FRAME + FB_MAX_PAYLOAD)
#define FB_CRC_INIT 0xFFFFu

/* Negative results of fb_encode(). */
#define FB_ERR_ARGUMENT (-1) /* a NULL pointer where data is needed */
#define FB_ERR_PAYLOAD (-2)  /* len > FB_MAX_PAYLOAD */
#define FB_ERR_SPACE (-3)    /* the output buffer is too small */

/* One frame. From the parser, data points into the parser's buffer: valid until the next call
 * on that parser. tag is 0 (and ignored by the encoder) unless FB_TAGGED. */
typedef struct {
    uint8_t addr;
    uint8_t cmd;
    uint8_t tag;
    uint8_t len;
    const uint8_t *data;
} fb_frame;

/* CRC-16/MODBUS (reflected 0xA001, no final XOR) of n bytes, continuing from crc. Start with
 * FB_CRC_INIT. p may be NULL only if n == 0. Check value over "123456789": 0x4B37. */
uint16_t fb_crc16(uint16_t crc, const uint8_t *p, size_t n);

/* Encode f into out[0..cap). Returns the frame's size (FB_MIN_FRAME + f->len) or a negative
 * FB_ERR_*; nothing useful is in out on error. f->data may be NULL only if f->len == 0. */
int32_t fb_encode(const fb_frame *f, uint8_t *out, size_t cap);

/* Counters, as frames.stream.DecoderStats. They wrap at 2^32. */
typedef struct {
    uint32_t frames;          /* frames handed out */
    uint32_t crc_errors;      /* candidates whose CRC did not match */
    uint32_t length_errors;   /* candidates declaring len > FB_MAX_PAYLOAD */
    uint32_t abandoned;       /* incomplete candidates given up by lookahead or idle */
    uint32_t discarded_bytes; /* bytes that were not part of any frame handed out */
    uint32_t unread;          /* frames lost because fb_parser_feed() was called before
                                 fb_parser_next() returned false (a caller bug) */
} fb_parser_stats;

/* The parser. Treat the fields as private except stats. Size: FB_MAX_FRAME + ~32 bytes. */
typedef struct {
    uint8_t buf[FB_MAX_FRAME]; /* buf[0] is the candidate's start byte when n > 0 */
    uint16_t n;                /* bytes held */
    uint16_t ready;            /* size of the frame handed out at buf[0], dropped next call */
    uint16_t inner;            /* first start byte in buf[1..n), 0: none (lookahead's fast path) */
    bool more;                 /* bytes after the handed-out frame still wait to be scanned */
    fb_parser_stats stats;
} fb_parser;

/* Start empty with zero counters. p must not be NULL (as for every fb_parser_* function). */
void fb_parser_init(fb_parser *p);

/* Forget the bytes held (e.g. after reopening the port); counters are kept, the bytes count
 * as discarded. */
void fb_parser_reset(fb_parser *p);

/* Add one received byte. Returns true when a frame is complete: *out describes it until the
 * next call on p. After true, call fb_parser_next() until it returns false before feeding
 * again (with FB_LOOKAHEAD it returns false at once unless the stream nests frames). Constant
 * memory; time bounded by O(FB_MAX_FRAME) per byte. Safe to call from an interrupt if p is
 * not touched elsewhere meanwhile. */
bool fb_parser_feed(fb_parser *p, uint8_t byte, fb_frame *out);

/* The next frame the bytes already held complete (see fb_parser_feed). */
bool fb_parser_next(fb_parser *p, fb_frame *out);

/* The line has been quiet for an inter-frame gap: give up the incomplete candidate and return
 * the frames the remaining bytes hold, one per call, until false; then p holds no bytes. */
bool fb_parser_idle(fb_parser *p, fb_frame *out);

/* Bytes held waiting for the rest of a frame. */
size_t fb_parser_pending(const fb_parser *p);

#ifdef __cplusplus
}
#endif
#endif /* FB_FRAME_H */
