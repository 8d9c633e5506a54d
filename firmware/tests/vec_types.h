/* Types of the generated vector header (see gen_vectors.py). */
#ifndef VEC_TYPES_H
#define VEC_TYPES_H
#include <stddef.h>
#include <stdint.h>

#include "fb_slave.h"

typedef struct {
    uint8_t addr;
    uint8_t cmd;
    uint8_t tag;
    const uint8_t *data;
    size_t len;
    const uint8_t *wire; /* frames.json only */
    size_t wire_len;
    const char *desc;
} vec_frame;

typedef struct {
    int32_t len; /* -1: the line went idle here */
    const uint8_t *bytes;
} vec_chunk;

typedef struct {
    const char *desc;
    const vec_chunk *chunks;
    size_t nchunks;
    const vec_frame *frames;
    size_t nframes;
    uint32_t stats[5]; /* frames, crc_errors, length_errors, abandoned, discarded_bytes */
} vec_stream;

typedef struct {
    const char *desc;
    const uint8_t *req;
    size_t req_len;
    const uint8_t *reply;
    size_t reply_len;
} vec_step;

typedef struct {
    const char *desc;
    uint8_t address;
    const char *model;
    uint8_t firmware[3];
    uint32_t uid;
    const fb_reg_def *defs;
    const uint16_t *initial;
    uint16_t *values;
    uint16_t nregs;
    const vec_step *steps;
    size_t nsteps;
} vec_device;

typedef struct {
    uint8_t cmd;
    const uint8_t *data;
    size_t len;
} vec_payload;
#endif
