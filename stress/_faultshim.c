/* LD_PRELOAD fault injector for the stress harness (see stress/_shim.py).
 *
 * Intercepts write/pwrite/writev/fsync/fdatasync.  Nothing is injected until
 * Python arms it through ctypes (stress_fault_arm); then every matching call
 * on a file whose path contains `match` fails with `err` (after `skip`
 * matching calls were let through; `once` disarms after the first failure).
 * kinds: bit 1 = writes, bit 2 = syncs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static volatile int g_kinds = 0;
static volatile int g_err = EIO;
static volatile long g_skip = 0;
static volatile int g_once = 0;
static volatile long g_hits = 0;
static char g_match[512];

void stress_fault_arm(int kinds, const char *match, int err, long skip, int once) {
    strncpy(g_match, match, sizeof(g_match) - 1);
    g_match[sizeof(g_match) - 1] = 0;
    g_err = err;
    g_skip = skip;
    g_once = once;
    __atomic_store_n(&g_kinds, kinds, __ATOMIC_SEQ_CST);
}

void stress_fault_disarm(void) { __atomic_store_n(&g_kinds, 0, __ATOMIC_SEQ_CST); }

long stress_fault_hits(void) { return __atomic_load_n(&g_hits, __ATOMIC_SEQ_CST); }

static int fd_matches(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n < 0) return 0;
    path[n] = 0;
    return strstr(path, g_match) != NULL;
}

static int should_fail(int kind, int fd) {
    if (!(__atomic_load_n(&g_kinds, __ATOMIC_SEQ_CST) & kind)) return 0;
    int saved = errno;
    int m = fd_matches(fd);
    errno = saved;
    if (!m) return 0;
    if (__atomic_load_n(&g_skip, __ATOMIC_SEQ_CST) > 0) {
        __atomic_sub_fetch(&g_skip, 1, __ATOMIC_SEQ_CST);
        return 0;
    }
    __atomic_add_fetch(&g_hits, 1, __ATOMIC_SEQ_CST);
    if (g_once) __atomic_store_n(&g_kinds, 0, __ATOMIC_SEQ_CST);
    return 1;
}

#define REAL(name, ret, ...) \
    static ret (*real_##name)(__VA_ARGS__); \
    if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write, ssize_t, int, const void *, size_t);
    if (should_fail(1, fd)) { errno = g_err; return -1; }
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
    if (should_fail(1, fd)) { errno = g_err; return -1; }
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite64, ssize_t, int, const void *, size_t, off_t);
    if (should_fail(1, fd)) { errno = g_err; return -1; }
    return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(writev, ssize_t, int, const struct iovec *, int);
    if (should_fail(1, fd)) { errno = g_err; return -1; }
    return real_writev(fd, iov, cnt);
}

int fsync(int fd) {
    REAL(fsync, int, int);
    if (should_fail(2, fd)) { errno = g_err; return -1; }
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync, int, int);
    if (should_fail(2, fd)) { errno = g_err; return -1; }
    return real_fdatasync(fd);
}
