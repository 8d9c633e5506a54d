/*
 * fb_posix.h -- the POSIX glue the host programs share (not part of the firmware library):
 * open a serial device or pty raw, make a pty, a millisecond clock, write all bytes.
 */
#ifndef FB_POSIX_H
#define FB_POSIX_H

#include <stddef.h>
#include <stdint.h>

/* Open path read/write, raw (no echo, no line discipline), non-blocking. -1 on error (printed). */
int fbp_open_tty(const char *path);

/* A new pty: returns the controlling (device) side, raw and non-blocking, and writes the path a
 * master opens into path[0..cap). -1 on error (printed). */
int fbp_open_pty(char *path, size_t cap);

/* Monotonic milliseconds. */
uint64_t fbp_now_ms(void);

/* Write all n bytes (waits for the line at most timeout_ms in total). 0 or -1. */
int fbp_write_all(int fd, const uint8_t *p, size_t n, int timeout_ms);

#endif
