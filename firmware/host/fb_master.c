/*
 * fb-master -- the C encoder and parser as a bus master, one request per input line.
 *
 *   fb-master [--timeout-ms N] TTY
 *
 * Input lines:  ADDR CMD HEXDATA [TAG]   encode and send a request (HEXDATA "-" = empty)
 *               raw HEXBYTES              send bytes as they are (corrupted frames, noise)
 *               split ADDR CMD HEXDATA    as the first form, written one byte per write()
 * After each line it waits up to N ms (default 500) for a frame from ADDR (any frame for raw)
 * and prints it as a JSON line {"addr":..,"cmd":..,"tag":..,"data":".."}, or {"timeout":true}.
 * A broadcast (ADDR 0) waits for nothing and prints {"sent":true}.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fb_frame.h"
#include "fb_posix.h"

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (strcmp(s, "-") == 0) {
        return 0;
    }
    while (s[0] && s[1] && n < cap) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1) {
            break;
        }
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void print_frame(const fb_frame *f)
{
    size_t i;
    printf("{\"addr\":%u,\"cmd\":%u,\"tag\":%u,\"data\":\"", (unsigned)f->addr, (unsigned)f->cmd,
           (unsigned)f->tag);
    for (i = 0; i < f->len; i++) {
        printf("%02x", (unsigned)f->data[i]);
    }
    printf("\"}\n");
}

/* Read until a frame (from want, or any if want < 0) or the deadline. */
static void await_reply(int fd, fb_parser *p, int want, int timeout_ms)
{
    uint64_t until = fbp_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        struct pollfd pfd;
        uint8_t in[512];
        ssize_t got;
        ssize_t k;
        uint64_t now = fbp_now_ms();
        if (now >= until) {
            printf("{\"timeout\":true}\n");
            return;
        }
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)(until - now)) <= 0) {
            continue;
        }
        got = read(fd, in, sizeof in);
        for (k = 0; k < got; k++) {
            fb_frame f;
            bool have = fb_parser_feed(p, in[k], &f);
            while (have) {
                if (want < 0 || f.addr == want) {
                    print_frame(&f);
                    /* the rest of this read is dropped: one reply per request */
                    fb_parser_reset(p);
                    return;
                }
                have = fb_parser_next(p, &f);
            }
        }
    }
}

int main(int argc, char **argv)
{
    static fb_parser parser;
    char line[2048];
    int timeout_ms = 500;
    int argi = 1;
    int fd;
    if (argi + 1 < argc && strcmp(argv[argi], "--timeout-ms") == 0) {
        timeout_ms = atoi(argv[argi + 1]);
        argi += 2;
    }
    if (argi >= argc) {
        fprintf(stderr, "usage: fb-master [--timeout-ms N] TTY\n");
        return 2;
    }
    fd = fbp_open_tty(argv[argi]);
    if (fd < 0) {
        return 1;
    }
    fb_parser_init(&parser);
    while (fgets(line, sizeof line, stdin) != NULL) {
        uint8_t data[FB_MAX_FRAME];
        uint8_t wire[FB_MAX_FRAME];
        char hex[1024];
        unsigned addr;
        unsigned cmd;
        unsigned tag = 0;
        int fields;
        int split;
        if (sscanf(line, "raw %1023s", hex) == 1) {
            size_t n = unhex(hex, wire, sizeof wire);
            if (fbp_write_all(fd, wire, n, 1000) != 0) {
                return 1;
            }
            await_reply(fd, &parser, -1, timeout_ms);
        } else if ((split = strncmp(line, "split ", 6) == 0 ? 6 : 0),
                   (fields = sscanf(line + split, "%u %u %1023s %u", &addr, &cmd, hex, &tag)) >= 3) {
            fb_frame f;
            int32_t size;
            f.addr = (uint8_t)addr;
            f.cmd = (uint8_t)cmd;
            f.tag = (uint8_t)tag;
            f.len = (uint8_t)unhex(hex, data, FB_MAX_PAYLOAD);
            f.data = data;
            size = fb_encode(&f, wire, sizeof wire);
            if (size > 0 && split) {
                int32_t k;
                for (k = 0; k < size - 1 && fbp_write_all(fd, wire + k, 1, 1000) == 0; k++) {
                }
                size = fbp_write_all(fd, wire + size - 1, 1, 1000) == 0 ? size : -4;
                if (size > 0) {
                    size = 0; /* written */
                }
            } else if (size > 0) {
                size = fbp_write_all(fd, wire, (size_t)size, 1000) == 0 ? 0 : -4;
            }
            if (size < 0) {
                printf("{\"error\":%d}\n", (int)size);
            } else if (addr == FB_BROADCAST) {
                printf("{\"sent\":true}\n");
            } else {
                await_reply(fd, &parser, (int)addr, timeout_ms);
            }
        } else {
            printf("{\"error\":\"bad line\"}\n");
        }
        fflush(stdout);
    }
    close(fd);
    return 0;
}
