/*
 * One side of the C-against-Rust benchmark (benchmarks/c-api/run.sh): the
 * C interface, as a C program uses it. peer.rs does the same through the
 * Rust API, so that each round compares the two on the same work.
 *
 *   peer recv SIZE COUNT SENDER   create a channel (default options: 4 MiB
 *                                 ring), start `SENDER send ID SIZE COUNT`,
 *                                 receive COUNT messages into one buffer
 *                                 (shmchan_recv) and read every byte; print
 *                                 msg/s between the first and the last
 *   peer send ID SIZE COUNT       send COUNT messages of SIZE bytes, each
 *                                 copied from one buffer (shmchan_send) with
 *                                 its number in its first 8 bytes
 */
#define _POSIX_C_SOURCE 200809L
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "shmchan.h"

extern char **environ;

static void die(const char *what, shmchan_status st)
{
    fprintf(stderr, "peer.c: %s: %s (%s)\n", what, shmchan_strerror(st), shmchan_last_error_message());
    exit(1);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Reads every byte, as the Rust peer does (a wrapping sum of 8-byte words
 * and of the bytes after the last whole word), with the instructions LLVM
 * gives the Rust peer's loop: two 16-byte loads and adds per 32 bytes
 * (SSE2, which every x86-64 has), then 8-byte words. gcc compiles the
 * plain C loop to 8-byte loads instead, and at 64 B those wait on the
 * wide stores with which glibc's memcpy has just filled the buffer (a
 * store-forwarding stall: 64 % of the C receiver's samples in `touch`
 * and a quarter of its time, none in the Rust peer's), which measured
 * gcc against LLVM rather than the interface. */
static uint64_t touch(const unsigned char *p, size_t len)
{
    size_t i = 0;
    uint64_t s = 0;
#ifdef __SSE2__
    /* Counted by blocks, so that gcc's loop is LLVM's six instructions;
     * `for (; i + 32 <= len; i += 32)` gave nine (accumulator copies),
     * and at 64 KiB a C receiver 0.85x the Rust one from this alone. */
    size_t blocks = len / 32;
    const __m128i *v = (const __m128i *)p;
    __m128i a = _mm_setzero_si128(), b = _mm_setzero_si128();
    for (size_t k = 0; k < blocks; k++) {
        a = _mm_add_epi64(a, _mm_loadu_si128(v + 2 * k));
        b = _mm_add_epi64(b, _mm_loadu_si128(v + 2 * k + 1));
    }
    i = blocks * 32;
    uint64_t w2[2];
    _mm_storeu_si128((__m128i *)w2, _mm_add_epi64(a, b));
    s = w2[0] + w2[1];
#endif
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        s += w;
    }
    for (; i < len; i++)
        s += p[i];
    return s;
}

static int send_side(int32_t id, size_t size, unsigned long count)
{
    shmchan_channel *ch = NULL;
    shmchan_sender *tx = NULL;
    shmchan_status st = shmchan_open_id(id, &ch);
    if (st != SHMCHAN_OK)
        die("open", st);
    if ((st = shmchan_channel_sender(ch, &tx)) != SHMCHAN_OK)
        die("sender", st);
    shmchan_channel_close(ch);
    unsigned char *msg = calloc(size < 8 ? 8 : size, 1);
    for (unsigned long i = 0; i < count; i++) {
        uint64_t n = i;
        memcpy(msg, &n, size < 8 ? size : 8);
        if ((st = shmchan_send(tx, msg, size)) != SHMCHAN_OK)
            die("send", st);
    }
    free(msg);
    shmchan_sender_close(tx);
    return 0;
}

static int recv_side(size_t size, unsigned long count, char *sender)
{
    shmchan_channel *ch = NULL;
    shmchan_receiver *rx = NULL;
    shmchan_status st = shmchan_create(SHMCHAN_KEY_PRIVATE, NULL, &ch);
    if (st != SHMCHAN_OK)
        die("create", st);
    if ((st = shmchan_channel_receiver(ch, &rx)) != SHMCHAN_OK)
        die("receiver", st);
    int32_t id = 0;
    shmchan_channel_id(ch, &id);
    char ids[16], sizes[24], counts[24];
    snprintf(ids, sizeof ids, "%d", id);
    snprintf(sizes, sizeof sizes, "%zu", size);
    snprintf(counts, sizeof counts, "%lu", count);
    char *argv[] = {sender, "send", ids, sizes, counts, NULL};
    pid_t pid;
    if (posix_spawn(&pid, sender, NULL, NULL, argv, environ) != 0) {
        perror(sender);
        shmchan_remove(ch);
        return 1;
    }
    unsigned char *buf = malloc(size ? size : 1);
    uint64_t sum = 0;
    double first = 0;
    for (unsigned long i = 0; i < count; i++) {
        size_t len = 0;
        if ((st = shmchan_recv(rx, buf, size, &len)) != SHMCHAN_OK || len != size) {
            shmchan_remove(ch);
            die("recv", st);
        }
        if (i == 0)
            first = now();
        sum += touch(buf, len);
    }
    double secs = now() - first;
    free(buf);
    int status = 0;
    waitpid(pid, &status, 0);
    shmchan_receiver_close(rx);
    shmchan_channel_close(ch);
    printf("%.0f msg/s (%lu messages of %zu B in %.3f s, sum %llu)\n", (double)(count - 1) / secs, count, size,
           secs, (unsigned long long)sum);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "recv") == 0)
        return recv_side(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10), argv[4]);
    if (argc == 5 && strcmp(argv[1], "send") == 0)
        return send_side((int32_t)strtol(argv[2], NULL, 10), strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10));
    fprintf(stderr, "usage: peer recv SIZE COUNT SENDER | peer send ID SIZE COUNT\n");
    return 2;
}
