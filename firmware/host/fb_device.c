/*
 * fb-device -- serve the standard commands with an example register map on a serial device,
 * with the firmware library's own code path (fb_slave_rx / fb_slave_tick), until SIGTERM.
 *
 *   fb-device [--gap-ms N] TTY ADDR [ADDR...]   serve TTY (a serial device or a pty path)
 *   fb-device [--gap-ms N] --pty ADDR [ADDR...] make a pty; print its path first
 *
 * Prints one line when ready: "PATH<TAB>addresses=1,2" (PATH: what a master opens).
 * The register map is firmware_sim's "thermo" profile (same addresses, types, limits), so the
 * bridge can poll a C device with profile = "thermo".
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../fb_slave.h"
#include "fb_posix.h"

#define MAX_SLAVES 32
#define NREGS 6
#define UPTIME 4

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* thermo: temperature (i16 0.01 °C), humidity (0.1 %RH), setpoint (i16 0.01 °C, 5..35),
 * heater (0..1), uptime (s), status. */
static const fb_reg_def thermo_defs[NREGS] = {
    {0, FB_REG_SIGNED, 0, 0},
    {1, 0, 0, 0},
    {2, FB_REG_WRITABLE | FB_REG_SIGNED | FB_REG_MIN | FB_REG_MAX, 500, 3500},
    {3, FB_REG_WRITABLE | FB_REG_MIN | FB_REG_MAX, 0, 1},
    {4, 0, 0, 0},
    {5, 0, 0, 0},
};
static const uint16_t thermo_initial[NREGS] = {2150, 450, 2200, 0, 0, 0};

typedef struct {
    fb_slave slave;
    fb_identity identity;
    uint16_t values[NREGS];
} device;

static device devices[MAX_SLAVES]; /* the host program's state; the library has no globals */

static int usage(void)
{
    fprintf(stderr, "usage: fb-device [--gap-ms N] (TTY | --pty) ADDR [ADDR...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    char path[256];
    const char *tty = NULL;
    int gap_ms = 5;
    int argi = 1;
    int ndev = 0;
    int fd;
    int i;
    uint64_t t0;
    uint64_t last_tick;
    struct sigaction sa;

    if (argi + 1 < argc && strcmp(argv[argi], "--gap-ms") == 0) {
        gap_ms = atoi(argv[argi + 1]);
        argi += 2;
    }
    if (argi >= argc || gap_ms < 1) {
        return usage();
    }
    tty = argv[argi++];
    for (; argi < argc; argi++) {
        char *end;
        long a = strtol(argv[argi], &end, 10);
        device *d;
        fb_regs regs;
        if (*end != '\0' || a < 1 || a > 247 || ndev == MAX_SLAVES) {
            fprintf(stderr, "fb-device: bad address %s (1..247, at most %d)\n", argv[argi],
                    MAX_SLAVES);
            return 2;
        }
        d = &devices[ndev++];
        memcpy(d->values, thermo_initial, sizeof d->values);
        d->identity.model = "THERMO-1-C";
        d->identity.firmware[0] = 0;
        d->identity.firmware[1] = 1;
        d->identity.firmware[2] = 0;
        d->identity.uid = 0x54480000u + (uint32_t)a;
        regs.defs = thermo_defs;
        regs.values = d->values;
        regs.count = NREGS;
        if (!fb_slave_init(&d->slave, (uint8_t)a, &d->identity, regs, NULL, 0,
                           (uint32_t)gap_ms)) {
            return 2;
        }
    }
    if (ndev == 0) {
        return usage();
    }
    if (strcmp(tty, "--pty") == 0) {
        fd = fbp_open_pty(path, sizeof path);
    } else {
        fd = fbp_open_tty(tty);
        snprintf(path, sizeof path, "%s", tty);
    }
    if (fd < 0) {
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    printf("%s\taddresses=", path);
    for (i = 0; i < ndev; i++) {
        printf(i ? ",%u" : "%u", (unsigned)devices[i].slave.address);
    }
    printf("\n");
    fflush(stdout);

    t0 = last_tick = fbp_now_ms();
    while (!stop_requested) {
        struct pollfd pfd;
        uint8_t in[512];
        uint64_t now;
        ssize_t got = 0;
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, 1) > 0) {
            got = read(fd, in, sizeof in);
            if (got < 0 && errno == EIO) { /* pty: nobody has the other side open (yet) */
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
                got = 0;
            } else if (got < 0 && errno != EAGAIN && errno != EINTR) {
                fprintf(stderr, "fb-device: read: %s\n", strerror(errno));
                return 1;
            } else if (got == 0 && !(pfd.revents & POLLIN)) {
                break;
            }
        }
        now = fbp_now_ms();
        for (i = 0; i < ndev; i++) {
            devices[i].values[UPTIME] = (uint16_t)((now - t0) / 1000u);
        }
        if (got > 0) {
            ssize_t k;
            for (k = 0; k < got; k++) {
                for (i = 0; i < ndev; i++) {
                    uint8_t tx[2 * FB_MAX_FRAME];
                    size_t n = fb_slave_rx(&devices[i].slave, in[k], tx, sizeof tx);
                    if (n > 0 && fbp_write_all(fd, tx, n, 1000) != 0) {
                        fprintf(stderr, "fb-device: write failed\n");
                    }
                }
            }
            last_tick = now;
        }
        if (now - last_tick > (uint64_t)gap_ms + 1u) { /* after a long stall: just the gap */
            last_tick = now - (uint64_t)gap_ms - 1u;
        }
        for (; last_tick < now; last_tick++) { /* one tick per millisecond of quiet */
            for (i = 0; i < ndev; i++) {
                uint8_t tx[2 * FB_MAX_FRAME];
                size_t n = fb_slave_tick(&devices[i].slave, tx, sizeof tx);
                if (n > 0 && fbp_write_all(fd, tx, n, 1000) != 0) {
                    fprintf(stderr, "fb-device: write failed\n");
                }
            }
        }
    }
    for (i = 0; i < ndev; i++) {
        const fb_slave_stats *st = &devices[i].slave.stats;
        const fb_parser_stats *ps = &devices[i].slave.parser.stats;
        fprintf(stderr,
                "fb-device %u: requests=%lu replies=%lu error_replies=%lu broadcasts=%lu "
                "frames=%lu crc_errors=%lu abandoned=%lu\n",
                (unsigned)devices[i].slave.address, (unsigned long)st->requests,
                (unsigned long)st->replies, (unsigned long)st->error_replies,
                (unsigned long)st->broadcasts, (unsigned long)ps->frames,
                (unsigned long)ps->crc_errors, (unsigned long)ps->abandoned);
    }
    close(fd);
    return 0;
}
