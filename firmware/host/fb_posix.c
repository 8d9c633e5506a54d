/* fb_posix.c -- see fb_posix.h. */
#define _XOPEN_SOURCE 700
#include "fb_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int make_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        return -1;
    }
    /* What cfmakeraw() does, spelled out (cfmakeraw is not POSIX). */
    t.c_iflag &= (tcflag_t) ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag &= (tcflag_t)~OPOST;
    t.c_lflag &= (tcflag_t) ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= (tcflag_t) ~(CSIZE | PARENB);
    t.c_cflag |= CS8 | CREAD | CLOCAL;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    return tcsetattr(fd, TCSANOW, &t);
}

int fbp_open_tty(const char *path)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (isatty(fd) && make_raw(fd) != 0) {
        fprintf(stderr, "cannot set %s raw: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int fbp_open_pty(char *path, size_t cap)
{
    int fd = posix_openpt(O_RDWR | O_NOCTTY);
    const char *name;
    if (fd < 0 || grantpt(fd) != 0 || unlockpt(fd) != 0 || (name = ptsname(fd)) == NULL ||
        strlen(name) >= cap) {
        fprintf(stderr, "cannot make a pty: %s\n", strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    strcpy(path, name);
    if (make_raw(fd) != 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        fprintf(stderr, "cannot set the pty raw: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

uint64_t fbp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int fbp_write_all(int fd, const uint8_t *p, size_t n, int timeout_ms)
{
    uint64_t until = fbp_now_ms() + (uint64_t)timeout_ms;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return -1;
        }
        {
            struct pollfd pfd;
            uint64_t now = fbp_now_ms();
            if (now >= until) {
                return -1;
            }
            pfd.fd = fd;
            pfd.events = POLLOUT;
            pfd.revents = 0;
            (void)poll(&pfd, 1, (int)(until - now));
        }
    }
    return 0;
}
