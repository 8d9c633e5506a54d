/*
 * fb-parse -- the C parser as a filter: bytes in, one JSON line per frame out.
 *
 *   fb-parse [--gap-ms N] [TTY]
 *
 * Reads stdin (or TTY) and feeds every byte to fb_parser_feed(); when the input has been quiet
 * for N ms (default 5) or ends, calls fb_parser_idle() (as StreamDecoder.flush()). Prints
 *   {"addr":1,"cmd":3,"tag":0,"data":"0102"}         per frame
 *   {"stats":{"frames":...,"crc_errors":...,...}}     at the end of the input
 * Used by tests/firmware to compare the C parser with frames.stream.StreamDecoder.
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

static void idle(fb_parser *p)
{
    fb_frame f;
    while (fb_parser_idle(p, &f)) {
        print_frame(&f);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static fb_parser parser;
    int gap_ms = 5;
    int argi = 1;
    int fd = STDIN_FILENO;
    if (argi + 1 < argc && strcmp(argv[argi], "--gap-ms") == 0) {
        gap_ms = atoi(argv[argi + 1]);
        argi += 2;
    }
    if (argi < argc) {
        fd = fbp_open_tty(argv[argi]);
        if (fd < 0) {
            return 1;
        }
    }
    fb_parser_init(&parser);
    for (;;) {
        struct pollfd pfd;
        uint8_t in[4096];
        ssize_t got;
        ssize_t k;
        int ready;
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        ready = poll(&pfd, 1, fb_parser_pending(&parser) > 0 ? gap_ms : -1);
        if (ready == 0) {
            idle(&parser);
            continue;
        }
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        got = read(fd, in, sizeof in);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        for (k = 0; k < got; k++) {
            fb_frame f;
            bool have = fb_parser_feed(&parser, in[k], &f);
            while (have) {
                print_frame(&f);
                have = fb_parser_next(&parser, &f);
            }
        }
        fflush(stdout);
    }
    idle(&parser);
    printf("{\"stats\":{\"frames\":%lu,\"crc_errors\":%lu,\"length_errors\":%lu,"
           "\"abandoned\":%lu,\"discarded_bytes\":%lu}}\n",
           (unsigned long)parser.stats.frames, (unsigned long)parser.stats.crc_errors,
           (unsigned long)parser.stats.length_errors, (unsigned long)parser.stats.abandoned,
           (unsigned long)parser.stats.discarded_bytes);
    return 0;
}
