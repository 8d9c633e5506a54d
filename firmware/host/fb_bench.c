/*
 * fb-bench -- parser throughput: feed FILE's bytes REPS times through fb_parser_feed (one byte
 * per call, as a UART interrupt would), print {"bytes":..,"frames":..,"seconds":..}.
 * REPS 0 runs nothing (a baseline for instruction counts under callgrind).
 */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../fb_frame.h"

int main(int argc, char **argv)
{
    static fb_parser parser;
    static uint8_t data[1 << 22];
    struct timespec t0;
    struct timespec t1;
    unsigned long frames = 0;
    size_t n;
    long reps;
    long r;
    FILE *fp;
    if (argc != 3 || (fp = fopen(argv[1], "rb")) == NULL) {
        fprintf(stderr, "usage: fb-bench FILE REPS\n");
        return 2;
    }
    n = fread(data, 1, sizeof data, fp);
    fclose(fp);
    reps = atol(argv[2]);
    fb_parser_init(&parser);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (r = 0; r < reps; r++) {
        size_t i;
        for (i = 0; i < n; i++) {
            fb_frame f;
            bool have = fb_parser_feed(&parser, data[i], &f);
            while (have) {
                frames++;
                have = fb_parser_next(&parser, &f);
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("{\"bytes\":%lu,\"frames\":%lu,\"seconds\":%.6f}\n", (unsigned long)(n * (size_t)reps),
           frames, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
