/* An LD_PRELOAD shim for tests/faults.rs: injects write errors into, and records what a power
 * cut would lose from, the files of one directory (the database, its -wal), without touching
 * the program under test.
 *
 *   FAULTSHIM_DIR=/path       files whose path starts with this are watched (others pass)
 *   FAULTSHIM_CONTROL=/file   while this file exists and holds "erofs", "enospc" or "eio",
 *                             every write, truncate and fsync of a watched file fails with that
 *                             errno (a file system gone read-only, full, or failing)
 *   FAULTSHIM_UNDO=/dir       before each write or truncate of a watched file, the bytes and
 *                             size it replaces are appended to an undo log there; an fsync or
 *                             fdatasync of the file empties its log. After the process is
 *                             killed, replaying the logs backwards (tests/faults.rs) leaves
 *                             each file as it was at its last fsync: the page cache lost, as
 *                             in a power cut. Directory entries are taken as durable.
 *
 * Undo record: u64 offset, u64 length, u64 size before, then `length` old bytes (those that
 * existed: min(length, size before - offset)). Logs are named by the watched file's inode.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_ftruncate64)(int, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void init(void) {
    if (real_pwrite64) return;
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_write = dlsym(RTLD_NEXT, "write");
    real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
}

/* Whether fd is a regular file under FAULTSHIM_DIR (and not a -shm, which is memory). */
static int watched(int fd) {
    const char *dir = getenv("FAULTSHIM_DIR");
    if (!dir) return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    size_t len = strlen(path);
    if (len >= 4 && strcmp(path + len - 4, "-shm") == 0) return 0;
    return strncmp(path, dir, strlen(dir)) == 0;
}

/* The errno to fail with now, or 0. */
static int fault(void) {
    const char *control = getenv("FAULTSHIM_CONTROL");
    if (!control) return 0;
    int fd = open(control, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char what[16] = {0};
    ssize_t n = read(fd, what, sizeof what - 1);
    close(fd);
    if (n <= 0) return 0;
    if (strncmp(what, "erofs", 5) == 0) return EROFS;
    if (strncmp(what, "enospc", 6) == 0) return ENOSPC;
    if (strncmp(what, "eio", 3) == 0) return EIO;
    return 0;
}

static void undo_path(int fd, char *out, size_t size) {
    struct stat st;
    fstat(fd, &st);
    snprintf(out, size, "%s/%llu.undo", getenv("FAULTSHIM_UNDO"), (unsigned long long)st.st_ino);
}

/* Appends the undo record of a change of [offset, offset + length) to fd's file. */
static void record(int fd, uint64_t offset, uint64_t length) {
    if (!getenv("FAULTSHIM_UNDO")) return;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    uint64_t before = (uint64_t)st.st_size;
    uint64_t present = offset >= before ? 0 : (before - offset < length ? before - offset : length);
    char path[PATH_MAX];
    undo_path(fd, path, sizeof path);
    int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0) return;
    uint64_t header[3] = {offset, present, before};
    real_write(log, header, sizeof header);
    char buffer[65536];
    uint64_t done = 0;
    while (done < present) {
        size_t chunk = present - done < sizeof buffer ? present - done : sizeof buffer;
        ssize_t got = pread(fd, buffer, chunk, (off_t)(offset + done));
        if (got <= 0) break;
        real_write(log, buffer, (size_t)got);
        done += (uint64_t)got;
    }
    close(log);
}

static void synced(int fd) {
    if (!getenv("FAULTSHIM_UNDO")) return;
    char path[PATH_MAX];
    undo_path(fd, path, sizeof path);
    unlink(path);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    init();
    if (watched(fd)) {
        int error = fault();
        if (error) { errno = error; return -1; }
        record(fd, (uint64_t)offset, count);
    }
    return real_pwrite64(fd, buf, count, offset);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    return pwrite64(fd, buf, count, offset);
}

ssize_t write(int fd, const void *buf, size_t count) {
    init();
    if (fd > 2 && watched(fd)) {
        int error = fault();
        if (error) { errno = error; return -1; }
        off_t at = lseek(fd, 0, SEEK_CUR);
        if (at >= 0) record(fd, (uint64_t)at, count);
    }
    return real_write(fd, buf, count);
}

int ftruncate64(int fd, off64_t length) {
    init();
    if (watched(fd)) {
        int error = fault();
        if (error) { errno = error; return -1; }
        struct stat st;
        if (fstat(fd, &st) == 0 && (uint64_t)length < (uint64_t)st.st_size)
            record(fd, (uint64_t)length, (uint64_t)st.st_size - (uint64_t)length);
        else
            record(fd, (uint64_t)length, 0);
    }
    return real_ftruncate64(fd, length);
}

int ftruncate(int fd, off_t length) { return ftruncate64(fd, length); }

/* fsync and fdatasync: fail while faulting; on success, the file's undo log is emptied. */
static int sync_call(int fd, int (*real)(int)) {
    if (!watched(fd)) return real(fd);
    int error = fault();
    if (error) { errno = error; return -1; }
    int result = real(fd);
    if (result == 0) synced(fd);
    return result;
}

int fsync(int fd) {
    init();
    return sync_call(fd, real_fsync);
}

int fdatasync(int fd) {
    init();
    return sync_call(fd, real_fdatasync);
}
