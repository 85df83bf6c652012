/* A disk whose flush takes time: LD_PRELOAD this library and every fsync() and fdatasync()
 * of the process waits SLOW_FLUSH_US microseconds (default 2000) before it flushes, as on
 * network block storage or a busy disk. Flushes of several processes wait side by side, as
 * such storage serves them. docs/performance.md says how to run the benchmark with it.
 * SLOW_FLUSH_FAIL_WHILE=path: while a file exists at path, every flush fails after its wait
 * (EIO), as a failing disk's would; the tests use it.
 *
 *   cc -shared -fPIC -O2 -o slow_flush.so slow_flush.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void wait_as_a_slow_disk(void) {
    static long delay_us = -1;
    if (delay_us < 0) {
        const char *setting = getenv("SLOW_FLUSH_US");
        delay_us = setting ? atol(setting) : 2000;
    }
    struct timespec pause = {delay_us / 1000000, (delay_us % 1000000) * 1000};
    nanosleep(&pause, NULL);
}

static int failing(void) {
    const char *marker = getenv("SLOW_FLUSH_FAIL_WHILE");
    if (marker && access(marker, F_OK) == 0) {
        errno = EIO;
        return 1;
    }
    return 0;
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    wait_as_a_slow_disk();
    if (failing()) return -1;
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    wait_as_a_slow_disk();
    if (failing()) return -1;
    return real(fd);
}
