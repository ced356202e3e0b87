/*
 * The C test of libshmchan, run by ffi/tests/c_api.rs (under valgrind
 * memcheck there): `selftest` walks every error path of the C interface in
 * one process; the other modes are one side of a channel whose other side
 * is a Rust process or the shmchan command:
 *
 *   test_shmchan selftest
 *   test_shmchan send ID COUNT          sends COUNT pattern messages
 *   test_shmchan recv ID COUNT          receives and checks them, then
 *                                       expects SHMCHAN_E_DISCONNECTED
 *   test_shmchan send-lines ID WORD...  sends each WORD
 *   test_shmchan recv-lines ID WORD...  receives exactly the WORDs
 *
 * Every channel this program creates is removed on every path: those it
 * makes are tracked, and fail() removes them before it exits.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

#include "shmchan.h"

/* ---- failing, and cleaning up on the way out ---- */

#define MAX_TRACKED 64
static shmchan_channel *tracked[MAX_TRACKED];
static int plain_segment = -1; /* a non-channel segment, while it exists */

static void cleanup(void)
{
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked[i]) {
            shmchan_remove(tracked[i]);
            tracked[i] = NULL;
        }
    }
    if (plain_segment != -1) {
        shmctl(plain_segment, IPC_RMID, NULL);
        plain_segment = -1;
    }
}

static void fail(int line, const char *what)
{
    fprintf(stderr, "test_shmchan.c:%d: check failed: %s (last error: %s, errno %d)\n", line, what,
            shmchan_last_error_message(), shmchan_last_errno());
    cleanup();
    exit(1);
}

#define CHECK(cond)                  \
    do {                             \
        if (!(cond))                 \
            fail(__LINE__, #cond);   \
    } while (0)

/* `call` must return `code`. */
#define EXPECT(code, call)                                                                    \
    do {                                                                                      \
        shmchan_status got_ = (call);                                                         \
        if (got_ != (code)) {                                                                 \
            fprintf(stderr, "test_shmchan.c:%d: %s gave %d (%s), expected %s\n", __LINE__, #call, \
                    (int)got_, shmchan_strerror((int)got_), #code);                           \
            fail(__LINE__, #call);                                                            \
        }                                                                                     \
    } while (0)

#define OK(call) EXPECT(SHMCHAN_OK, call)

static void track(shmchan_channel *ch)
{
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (!tracked[i]) {
            tracked[i] = ch;
            return;
        }
    }
    fail(__LINE__, "too many tracked channels");
}

/* Removes a tracked channel now (and closes its handle). */
static void remove_tracked(shmchan_channel *ch)
{
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked[i] == ch)
            tracked[i] = NULL;
    }
    OK(shmchan_remove(ch));
}

/* A private channel of `capacity` bytes and `senders` lanes, tracked. */
static shmchan_channel *private_channel(uint64_t capacity, uint32_t senders)
{
    shmchan_options opts;
    OK(shmchan_options_init(&opts));
    opts.capacity = capacity;
    opts.max_senders = senders;
    shmchan_channel *ch = NULL;
    OK(shmchan_create(SHMCHAN_KEY_PRIVATE, &opts, &ch));
    CHECK(ch != NULL);
    track(ch);
    return ch;
}

/* A private channel of 4 KiB with its sender and receiver. */
static void open_pair(shmchan_channel **ch, shmchan_sender **tx, shmchan_receiver **rx)
{
    *ch = private_channel(4096, 1);
    OK(shmchan_channel_sender(*ch, tx));
    OK(shmchan_channel_receiver(*ch, rx));
}

static void close_pair(shmchan_channel *ch, shmchan_sender *tx, shmchan_receiver *rx)
{
    OK(shmchan_sender_close(tx));
    OK(shmchan_receiver_close(rx));
    remove_tracked(ch);
}

/* ---- the messages both languages agree on (ffi/tests/c_api.rs) ---- */

static size_t pattern_len(unsigned i)
{
    return (size_t)((i * 7919u) % 5000u);
}

static unsigned char pattern_byte(unsigned i, size_t j)
{
    return (unsigned char)(i * 31u + (unsigned)j);
}

static void fill_pattern(unsigned i, unsigned char *buf)
{
    for (size_t j = 0; j < pattern_len(i); j++)
        buf[j] = pattern_byte(i, j);
}

static int is_pattern(unsigned i, const unsigned char *buf, size_t len)
{
    if (len != pattern_len(i))
        return 0;
    for (size_t j = 0; j < len; j++) {
        if (buf[j] != pattern_byte(i, j))
            return 0;
    }
    return 1;
}

/* ---- selftest: every error path, in one process ---- */

static void test_strerror(void)
{
    CHECK(strcmp(shmchan_strerror(SHMCHAN_OK), "success") == 0);
    CHECK(strcmp(shmchan_strerror(SHMCHAN_E_BUFFER_TOO_SMALL), "buffer too small for the message") == 0);
    CHECK(strcmp(shmchan_strerror(-7), "unknown shmchan status code") == 0);
    for (int code = 0; code <= SHMCHAN_E_INTERNAL; code++)
        CHECK(shmchan_strerror(code) != NULL);
}

static void test_options(void)
{
    shmchan_channel *ch = (shmchan_channel *)&ch; /* overwritten with NULL on failure */
    EXPECT(SHMCHAN_E_NULL, shmchan_options_init(NULL));
    EXPECT(SHMCHAN_E_NULL, shmchan_create(SHMCHAN_KEY_PRIVATE, NULL, NULL));

    shmchan_options opts;
    OK(shmchan_options_init(&opts));
    CHECK(opts.size == sizeof opts && opts.capacity == SHMCHAN_DEFAULT_CAPACITY);
    CHECK(opts.max_senders == 1 && opts.mode == 0600 && opts.group == -1);

    opts.flags = 1u << 20; /* unknown flag */
    EXPECT(SHMCHAN_E_INVALID_ARGUMENT, shmchan_create(SHMCHAN_KEY_PRIVATE, &opts, &ch));
    CHECK(ch == NULL);
    OK(shmchan_options_init(&opts));
    opts.size = 4; /* shorter than its own size field */
    EXPECT(SHMCHAN_E_INVALID_ARGUMENT, shmchan_create(SHMCHAN_KEY_PRIVATE, &opts, &ch));
    OK(shmchan_options_init(&opts));
    opts.max_senders = SHMCHAN_MAX_SENDERS + 1;
    EXPECT(SHMCHAN_E_INVALID_ARGUMENT, shmchan_create(SHMCHAN_KEY_PRIVATE, &opts, &ch));
    CHECK(strstr(shmchan_last_error_message(), "max_senders") != NULL);
    OK(shmchan_options_init(&opts));
    opts.group = -2;
    EXPECT(SHMCHAN_E_INVALID_ARGUMENT, shmchan_create(SHMCHAN_KEY_PRIVATE, &opts, &ch));

    /* A caller whose header knows a field more than the library: zero is
     * accepted, anything else refused. */
    struct {
        shmchan_options known;
        uint64_t newer;
    } grown;
    memset(&grown, 0, sizeof grown);
    OK(shmchan_options_init(&grown.known));
    grown.known.size = sizeof grown;
    grown.known.capacity = 3000; /* rounded up to a power of two */
    grown.newer = 1;
    EXPECT(SHMCHAN_E_INVALID_ARGUMENT, shmchan_create(SHMCHAN_KEY_PRIVATE, &grown.known, &ch));
    grown.newer = 0;
    OK(shmchan_create(SHMCHAN_KEY_PRIVATE, &grown.known, &ch));
    track(ch);
    size_t cap = 0, max = 0;
    OK(shmchan_channel_capacity(ch, &cap));
    OK(shmchan_channel_max_message_len(ch, &max));
    CHECK(cap == 4096 && max == 4096 - SHMCHAN_FRAME_OVERHEAD);
    int32_t key = 1;
    OK(shmchan_channel_key(ch, &key));
    CHECK(key == SHMCHAN_KEY_PRIVATE);
    remove_tracked(ch);
}

static void test_keys(void)
{
    char path[] = "/tmp/shmchan-c-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd != -1);
    close(fd);
    int32_t key = 0;
    EXPECT(SHMCHAN_E_NULL, shmchan_ftok(NULL, 'C', &key));
    EXPECT(SHMCHAN_E_NULL, shmchan_ftok(path, 'C', NULL));
    EXPECT(SHMCHAN_E_INVALID_ARGUMENT, shmchan_ftok(path, 0, &key));
    EXPECT(SHMCHAN_E_INVALID_ARGUMENT, shmchan_ftok(path, 256, &key));
    EXPECT(SHMCHAN_E_OS, shmchan_ftok("/nonexistent/shmchan", 'C', &key));
    CHECK(shmchan_last_errno() == ENOENT);
    CHECK(strstr(shmchan_last_error_message(), "ftok") != NULL);
    OK(shmchan_ftok(path, 'C', &key));
    CHECK(key != 0 && key != -1);

    shmchan_channel *ch = NULL, *other = NULL;
    EXPECT(SHMCHAN_E_NOT_FOUND, shmchan_open_path(path, 'C', &other));
    CHECK(other == NULL);
    OK(shmchan_create_path(path, 'C', NULL, &ch));
    track(ch);
    EXPECT(SHMCHAN_E_ALREADY_EXISTS, shmchan_create_path(path, 'C', NULL, &other));
    EXPECT(SHMCHAN_E_ALREADY_EXISTS, shmchan_create(key, NULL, &other));
    OK(shmchan_open(key, &other));
    int32_t a = 0, b = 1;
    OK(shmchan_channel_id(ch, &a));
    OK(shmchan_channel_id(other, &b));
    CHECK(a == b);
    OK(shmchan_channel_close(other));
    OK(shmchan_open_path(path, 'C', &other));
    OK(shmchan_channel_close(other));
    remove_tracked(ch);
    unlink(path);
}

/* A plain segment with these first bytes: not a channel, or one of a
 * layout version this library does not speak. */
static void test_foreign_segments(void)
{
    plain_segment = shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600);
    CHECK(plain_segment != -1);
    unsigned char *mem = shmat(plain_segment, NULL, 0);
    CHECK(mem != (void *)-1);
    memcpy(mem, "NOTACHAN", 8);
    shmchan_channel *ch = NULL;
    EXPECT(SHMCHAN_E_NOT_A_CHANNEL, shmchan_open_id(plain_segment, &ch));
    CHECK(ch == NULL);
    uint32_t version = 99;
    memcpy(mem, "SHMCHAN\0", 8);
    memcpy(mem + 8, &version, 4);
    EXPECT(SHMCHAN_E_VERSION_MISMATCH, shmchan_open_id(plain_segment, &ch));
    shmdt(mem);
    shmctl(plain_segment, IPC_RMID, NULL);
    plain_segment = -1;
    EXPECT(SHMCHAN_E_NOT_FOUND, shmchan_open_id(0x7ffffff0, &ch));
}

static void test_handles(void)
{
    shmchan_channel *ch = private_channel(4096, 1);
    shmchan_sender *tx = NULL;
    shmchan_receiver *rx = NULL;
    size_t len = 0;
    char buf[16];

    /* NULL handles and out-parameters. */
    EXPECT(SHMCHAN_E_NULL, shmchan_channel_sender(NULL, &tx));
    EXPECT(SHMCHAN_E_NULL, shmchan_channel_sender(ch, NULL));
    EXPECT(SHMCHAN_E_NULL, shmchan_send(NULL, "x", 1));
    EXPECT(SHMCHAN_E_NULL, shmchan_recv(NULL, buf, sizeof buf, &len));
    EXPECT(SHMCHAN_E_NULL, shmchan_sender_close(NULL));
    EXPECT(SHMCHAN_E_NULL, shmchan_receiver_close(NULL));
    EXPECT(SHMCHAN_E_NULL, shmchan_channel_close(NULL));
    EXPECT(SHMCHAN_E_NULL, shmchan_remove(NULL));
    EXPECT(SHMCHAN_E_NULL, shmchan_channel_id(ch, NULL));

    OK(shmchan_channel_sender(ch, &tx));
    OK(shmchan_channel_receiver(ch, &rx));

    /* A handle of one kind passed as another (only a cast can do it). */
    EXPECT(SHMCHAN_E_CLOSED, shmchan_recv((shmchan_receiver *)tx, buf, sizeof buf, &len));
    EXPECT(SHMCHAN_E_CLOSED, shmchan_channel_close((shmchan_channel *)rx));
    /* A value no call returned. */
    EXPECT(SHMCHAN_E_CLOSED, shmchan_send((shmchan_sender *)(uintptr_t)0x12345, "x", 1));

    /* NULL buffers: an error with a length, fine without. */
    EXPECT(SHMCHAN_E_NULL, shmchan_send(tx, NULL, 5));
    OK(shmchan_send(tx, NULL, 0));
    EXPECT(SHMCHAN_E_NULL, shmchan_recv(rx, NULL, 5, &len));
    EXPECT(SHMCHAN_E_NULL, shmchan_recv(rx, buf, sizeof buf, NULL));
    shmchan_sender_id from;
    EXPECT(SHMCHAN_E_NULL, shmchan_recv_from(rx, buf, sizeof buf, &len, NULL));
    OK(shmchan_recv_from(rx, NULL, 0, &len, &from));
    CHECK(len == 0);
    EXPECT(SHMCHAN_E_NULL, shmchan_recv_ref(rx, NULL, &len, NULL));

    /* Closed handles: every call, and a second close, is an error. */
    OK(shmchan_sender_close(tx));
    EXPECT(SHMCHAN_E_CLOSED, shmchan_send(tx, "x", 1));
    EXPECT(SHMCHAN_E_CLOSED, shmchan_sender_close(tx));
    OK(shmchan_receiver_close(rx));
    EXPECT(SHMCHAN_E_CLOSED, shmchan_try_recv(rx, buf, sizeof buf, &len));
    EXPECT(SHMCHAN_E_CLOSED, shmchan_receiver_close(rx));

    /* Slots are reused: an old handle stays closed beside a new one. */
    shmchan_sender *again = NULL;
    OK(shmchan_channel_sender(ch, &again));
    EXPECT(SHMCHAN_E_CLOSED, shmchan_send(tx, "x", 1));
    OK(shmchan_sender_close(again));
    /* More handles at once than a chunk of the table holds (1024). */
    enum { MANY = 1100 };
    static shmchan_channel *many[MANY];
    int32_t id = 0;
    OK(shmchan_channel_id(ch, &id));
    for (int i = 0; i < MANY; i++)
        OK(shmchan_open_id(id, &many[i]));
    for (int i = 0; i < MANY; i++)
        OK(shmchan_channel_close(many[i]));
    EXPECT(SHMCHAN_E_CLOSED, shmchan_channel_close(many[MANY - 1]));
    EXPECT(SHMCHAN_E_CLOSED, shmchan_sender_close(again));

    remove_tracked(ch);
    EXPECT(SHMCHAN_E_CLOSED, shmchan_channel_id(ch, &(int32_t){0}));
    EXPECT(SHMCHAN_E_CLOSED, shmchan_remove(ch));
}

static void test_roles_and_limits(void)
{
    shmchan_channel *ch = private_channel(4096, 1);
    shmchan_sender *tx = NULL, *tx2 = (shmchan_sender *)&tx;
    shmchan_receiver *rx = NULL, *rx2 = NULL;
    OK(shmchan_channel_sender(ch, &tx));
    OK(shmchan_channel_receiver(ch, &rx));
    EXPECT(SHMCHAN_E_ROLE_TAKEN, shmchan_channel_sender(ch, &tx2));
    CHECK(tx2 == NULL);
    EXPECT(SHMCHAN_E_ROLE_TAKEN, shmchan_channel_receiver(ch, &rx2));

    static unsigned char big[4096];
    size_t len = 0;
    char buf[16];
    EXPECT(SHMCHAN_E_MESSAGE_TOO_LARGE, shmchan_send(tx, big, 4096 - 8 + 1));
    EXPECT(SHMCHAN_E_MESSAGE_TOO_LARGE, shmchan_try_send(tx, big, 4096));
    void *payload = NULL;
    EXPECT(SHMCHAN_E_MESSAGE_TOO_LARGE, shmchan_reserve(tx, 5000, &payload));

    EXPECT(SHMCHAN_E_EMPTY, shmchan_try_recv(rx, buf, sizeof buf, &len));
    EXPECT(SHMCHAN_E_TIMEOUT, shmchan_recv_timeout(rx, buf, sizeof buf, &len, 1000000));
    const void *data = NULL;
    EXPECT(SHMCHAN_E_EMPTY, shmchan_try_recv_ref(rx, &data, &len, NULL));
    EXPECT(SHMCHAN_E_TIMEOUT, shmchan_recv_ref_timeout(rx, &data, &len, NULL, 1000));

    /* Fill the ring: try_ says full, _timeout times out, nothing is lost. */
    int sent = 0;
    shmchan_status st;
    while ((st = shmchan_try_send(tx, big, 1000)) == SHMCHAN_OK)
        sent++;
    EXPECT(SHMCHAN_E_FULL, st);
    CHECK(sent >= 3);
    EXPECT(SHMCHAN_E_TIMEOUT, shmchan_send_timeout(tx, big, 1000, 1000000));
    EXPECT(SHMCHAN_E_FULL, shmchan_try_reserve(tx, 1000, &payload));
    CHECK(payload == NULL);
    EXPECT(SHMCHAN_E_TIMEOUT, shmchan_reserve_timeout(tx, 1000, &payload, 1000));
    static unsigned char got[1000];
    for (int i = 0; i < sent; i++) {
        OK(shmchan_try_recv(rx, got, sizeof got, &len));
        CHECK(len == 1000);
    }
    EXPECT(SHMCHAN_E_EMPTY, shmchan_try_recv(rx, got, sizeof got, &len));

    close_pair(ch, tx, rx);
}

static void test_buffer_too_small(void)
{
    shmchan_channel *ch;
    shmchan_sender *tx;
    shmchan_receiver *rx;
    open_pair(&ch, &tx, &rx);
    unsigned char msg[100], buf[100];
    memset(msg, 'm', sizeof msg);
    OK(shmchan_send(tx, msg, sizeof msg));
    OK(shmchan_send(tx, "next", 4));

    size_t len = 0;
    EXPECT(SHMCHAN_E_BUFFER_TOO_SMALL, shmchan_recv(rx, buf, 10, &len));
    CHECK(len == 100);
    len = 0;
    EXPECT(SHMCHAN_E_BUFFER_TOO_SMALL, shmchan_try_recv(rx, NULL, 0, &len)); /* the length, asked */
    CHECK(len == 100);
    shmchan_sender_id from, mine;
    OK(shmchan_sender_get_id(tx, &mine));
    EXPECT(SHMCHAN_E_BUFFER_TOO_SMALL, shmchan_recv_from(rx, buf, 99, &len, &from));
    OK(shmchan_recv_from_timeout(rx, buf, sizeof buf, &len, &from, 1000000));
    CHECK(len == 100 && memcmp(buf, msg, 100) == 0);
    CHECK(from.lane == mine.lane && from.session == mine.session && mine.session >= 1);
    OK(shmchan_try_recv(rx, buf, sizeof buf, &len)); /* consumed once: the next one */
    CHECK(len == 4 && memcmp(buf, "next", 4) == 0);
    EXPECT(SHMCHAN_E_EMPTY, shmchan_try_recv(rx, buf, sizeof buf, &len));

    /* A message kept back is what the next plain receive returns (the
     * form with a fast path), not the one queued after it. */
    OK(shmchan_send(tx, msg, sizeof msg));
    OK(shmchan_send(tx, "next", 4));
    EXPECT(SHMCHAN_E_BUFFER_TOO_SMALL, shmchan_try_recv(rx, buf, 10, &len));
    OK(shmchan_recv(rx, buf, sizeof buf, &len));
    CHECK(len == 100 && memcmp(buf, msg, 100) == 0);
    OK(shmchan_recv(rx, buf, sizeof buf, &len));
    CHECK(len == 4 && memcmp(buf, "next", 4) == 0);

    /* A message kept back is not consumed by closing: the next receiver
     * gets it. */
    OK(shmchan_send(tx, msg, sizeof msg));
    EXPECT(SHMCHAN_E_BUFFER_TOO_SMALL, shmchan_recv(rx, buf, 1, &len));
    OK(shmchan_receiver_close(rx));
    OK(shmchan_channel_receiver(ch, &rx));
    OK(shmchan_try_recv(rx, buf, sizeof buf, &len));
    CHECK(len == 100);

    close_pair(ch, tx, rx);
}

static void test_zero_copy(void)
{
    shmchan_channel *ch;
    shmchan_sender *tx;
    shmchan_receiver *rx;
    open_pair(&ch, &tx, &rx);

    void *payload = NULL;
    EXPECT(SHMCHAN_E_PENDING, shmchan_commit(tx));
    EXPECT(SHMCHAN_E_PENDING, shmchan_cancel(tx));
    EXPECT(SHMCHAN_E_NULL, shmchan_reserve(tx, 5, NULL));
    OK(shmchan_reserve(tx, 5, &payload));
    CHECK(payload != NULL && ((uintptr_t)payload % 8) == 0);
    memcpy(payload, "zero!", 5);
    EXPECT(SHMCHAN_E_PENDING, shmchan_send(tx, "x", 1));
    EXPECT(SHMCHAN_E_PENDING, shmchan_reserve(tx, 1, &payload));
    shmchan_sender_id id;
    OK(shmchan_sender_get_id(tx, &id)); /* allowed while reserved */
    size_t len = 0;
    char buf[8];
    EXPECT(SHMCHAN_E_EMPTY, shmchan_try_recv(rx, buf, sizeof buf, &len)); /* not committed */
    OK(shmchan_commit(tx));
    EXPECT(SHMCHAN_E_PENDING, shmchan_commit(tx));
    OK(shmchan_try_reserve(tx, 3, &payload));
    memcpy(payload, "no", 3);
    OK(shmchan_cancel(tx)); /* nothing sent */
    OK(shmchan_reserve_timeout(tx, 2, &payload, 1000000));
    memcpy(payload, "ok", 2);
    OK(shmchan_commit(tx));

    const void *data = NULL;
    shmchan_sender_id from;
    EXPECT(SHMCHAN_E_PENDING, shmchan_release(rx));
    OK(shmchan_recv_ref(rx, &data, &len, &from));
    CHECK(len == 5 && memcmp(data, "zero!", 5) == 0 && from.session == id.session);
    EXPECT(SHMCHAN_E_PENDING, shmchan_recv(rx, buf, sizeof buf, &len));
    EXPECT(SHMCHAN_E_PENDING, shmchan_try_recv_ref(rx, &data, &len, NULL));
    OK(shmchan_release(rx));
    EXPECT(SHMCHAN_E_PENDING, shmchan_release(rx));
    OK(shmchan_try_recv_ref(rx, &data, &len, NULL));
    CHECK(len == 2 && memcmp(data, "ok", 2) == 0);
    OK(shmchan_release(rx));
    EXPECT(SHMCHAN_E_EMPTY, shmchan_try_recv(rx, buf, sizeof buf, &len));

    /* Closing with a message lent releases it; with a reservation, sends
     * nothing. */
    OK(shmchan_send(tx, "lent", 4));
    OK(shmchan_recv_ref(rx, &data, &len, NULL));
    OK(shmchan_reserve(tx, 4, &payload));
    OK(shmchan_receiver_close(rx));
    OK(shmchan_sender_close(tx));
    OK(shmchan_channel_receiver(ch, &rx));
    EXPECT(SHMCHAN_E_EMPTY, shmchan_try_recv(rx, buf, sizeof buf, &len)); /* both gone */
    OK(shmchan_receiver_close(rx));
    remove_tracked(ch);
}

static void test_disconnect_and_remove(void)
{
    shmchan_channel *ch = private_channel(4096, 1);
    shmchan_sender *tx = NULL;
    shmchan_receiver *rx = NULL;
    size_t len = 0;
    char buf[8];
    OK(shmchan_channel_sender(ch, &tx));
    OK(shmchan_channel_receiver(ch, &rx));
    OK(shmchan_send(tx, "bye", 3));
    OK(shmchan_sender_close(tx));
    OK(shmchan_recv(rx, buf, sizeof buf, &len)); /* drained first */
    EXPECT(SHMCHAN_E_DISCONNECTED, shmchan_recv(rx, buf, sizeof buf, &len));
    OK(shmchan_channel_sender(ch, &tx)); /* not sticky */
    OK(shmchan_receiver_close(rx));
    EXPECT(SHMCHAN_E_DISCONNECTED, shmchan_send(tx, "x", 1));
    OK(shmchan_channel_receiver(ch, &rx));

    remove_tracked(ch); /* under live parties */
    EXPECT(SHMCHAN_E_REMOVED, shmchan_send(tx, "x", 1));
    EXPECT(SHMCHAN_E_REMOVED, shmchan_try_recv(rx, buf, sizeof buf, &len));
    CHECK(strstr(shmchan_last_error_message(), "removed") != NULL);
    OK(shmchan_sender_close(tx));
    OK(shmchan_receiver_close(rx));
}

static void test_corrupted(void)
{
    shmchan_channel *ch;
    shmchan_sender *tx;
    shmchan_receiver *rx;
    open_pair(&ch, &tx, &rx);
    int32_t id = 0;
    OK(shmchan_channel_id(ch, &id));
    /* docs/layout.md: lane 0's tail, a u64 at offset 128; readers refuse
     * anything above 2^60. */
    unsigned char *mem = shmat(id, NULL, 0);
    CHECK(mem != (void *)-1);
    uint64_t tail = (uint64_t)1 << 61;
    memcpy(mem + 128, &tail, 8);
    shmdt(mem);
    size_t len = 0;
    char buf[8];
    EXPECT(SHMCHAN_E_CORRUPTED, shmchan_try_recv(rx, buf, sizeof buf, &len));
    EXPECT(SHMCHAN_E_CORRUPTED, shmchan_try_recv(rx, buf, sizeof buf, &len)); /* poisoned */
    close_pair(ch, tx, rx);
}

/* A receiver moved to another thread blocks there until the main thread
 * sends: the wake-up crosses threads as it crosses processes. */
struct waiter {
    shmchan_receiver *rx;
    char got[16];
    size_t len;
    shmchan_status status;
};

static void *wait_for_one(void *arg)
{
    struct waiter *w = arg;
    w->status = shmchan_recv(w->rx, w->got, sizeof w->got, &w->len);
    return NULL;
}

static void test_threads(void)
{
    shmchan_channel *ch = private_channel(4096, 2);
    shmchan_sender *a = NULL, *b = NULL;
    struct waiter w = {0};
    OK(shmchan_channel_receiver(ch, &w.rx));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, wait_for_one, &w) == 0);
    OK(shmchan_channel_sender(ch, &a)); /* the channel handle from two threads */
    OK(shmchan_channel_sender(ch, &b));
    shmchan_sender_id ia, ib;
    OK(shmchan_sender_get_id(a, &ia));
    OK(shmchan_sender_get_id(b, &ib));
    CHECK(ia.lane != ib.lane);
    OK(shmchan_send(b, "from b", 6));
    CHECK(pthread_join(t, NULL) == 0); /* the join hands the receiver back */
    EXPECT(SHMCHAN_OK, w.status);
    CHECK(w.len == 6 && memcmp(w.got, "from b", 6) == 0);
    OK(shmchan_send(a, "from a", 6));
    shmchan_sender_id from;
    OK(shmchan_recv_from(w.rx, w.got, sizeof w.got, &w.len, &from));
    CHECK(from.lane == ia.lane && from.session == ia.session);
    OK(shmchan_sender_close(a));
    OK(shmchan_sender_close(b));
    OK(shmchan_receiver_close(w.rx));
    remove_tracked(ch);
}

static int selftest(void)
{
    test_strerror();
    test_options();
    test_keys();
    test_foreign_segments();
    test_handles();
    test_roles_and_limits();
    test_buffer_too_small();
    test_zero_copy();
    test_disconnect_and_remove();
    test_corrupted();
    test_threads();
    printf("selftest: 11 passed, 0 failed\n");
    return 0;
}

/* ---- one side of a channel another process made ---- */

static void open_roles(const char *id, shmchan_channel **ch, shmchan_sender **tx,
                       shmchan_receiver **rx)
{
    OK(shmchan_open_id((int32_t)strtol(id, NULL, 10), ch));
    if (tx)
        OK(shmchan_channel_sender(*ch, tx));
    if (rx)
        OK(shmchan_channel_receiver(*ch, rx));
    /* The role handles are parties of their own. */
    OK(shmchan_channel_close(*ch));
}

/* Sends `count` pattern messages, alternately copied and reserved. */
static int send_pattern(const char *id, unsigned count)
{
    shmchan_channel *ch = NULL;
    shmchan_sender *tx = NULL;
    open_roles(id, &ch, &tx, NULL);
    static unsigned char msg[5000];
    for (unsigned i = 0; i < count; i++) {
        if (i % 2 == 0) {
            fill_pattern(i, msg);
            OK(shmchan_send(tx, msg, pattern_len(i)));
        } else {
            void *payload = NULL;
            OK(shmchan_reserve(tx, pattern_len(i), &payload));
            fill_pattern(i, payload);
            OK(shmchan_commit(tx));
        }
    }
    OK(shmchan_sender_close(tx));
    return 0;
}

/* Receives `count` pattern messages by every receive form, then expects
 * the sender's disconnect. */
static int recv_pattern(const char *id, unsigned count)
{
    shmchan_channel *ch = NULL;
    shmchan_receiver *rx = NULL;
    open_roles(id, &ch, NULL, &rx);
    static unsigned char buf[5000];
    size_t len = 0;
    for (unsigned i = 0; i < count; i++) {
        if (pattern_len(i) > 0) { /* the length first: consumes nothing */
            EXPECT(SHMCHAN_E_BUFFER_TOO_SMALL, shmchan_recv(rx, NULL, 0, &len));
            CHECK(len == pattern_len(i));
        }
        shmchan_sender_id from;
        const void *data = NULL;
        switch (i % 3) {
        case 0:
            OK(shmchan_recv(rx, buf, sizeof buf, &len));
            CHECK(is_pattern(i, buf, len));
            break;
        case 1:
            OK(shmchan_recv_ref(rx, &data, &len, NULL));
            CHECK(is_pattern(i, data, len));
            OK(shmchan_release(rx));
            break;
        default:
            OK(shmchan_recv_from_timeout(rx, buf, sizeof buf, &len, &from, UINT64_MAX));
            CHECK(is_pattern(i, buf, len) && from.lane == 0 && from.session >= 1);
        }
    }
    EXPECT(SHMCHAN_E_DISCONNECTED, shmchan_recv(rx, buf, sizeof buf, &len));
    OK(shmchan_receiver_close(rx));
    printf("received %u messages\n", count);
    return 0;
}

static int send_lines(const char *id, int n, char **words)
{
    shmchan_channel *ch = NULL;
    shmchan_sender *tx = NULL;
    open_roles(id, &ch, &tx, NULL);
    for (int i = 0; i < n; i++)
        OK(shmchan_send(tx, words[i], strlen(words[i])));
    OK(shmchan_sender_close(tx));
    return 0;
}

static int recv_lines(const char *id, int n, char **words)
{
    shmchan_channel *ch = NULL;
    shmchan_receiver *rx = NULL;
    open_roles(id, &ch, NULL, &rx);
    char buf[256];
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        OK(shmchan_recv(rx, buf, sizeof buf, &len));
        CHECK(len == strlen(words[i]) && memcmp(buf, words[i], len) == 0);
    }
    EXPECT(SHMCHAN_E_DISCONNECTED, shmchan_recv(rx, buf, sizeof buf, &len));
    OK(shmchan_receiver_close(rx));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "selftest") == 0)
        return selftest();
    if (argc == 4 && strcmp(argv[1], "send") == 0)
        return send_pattern(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "recv") == 0)
        return recv_pattern(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
    if (argc >= 3 && strcmp(argv[1], "send-lines") == 0)
        return send_lines(argv[2], argc - 3, argv + 3);
    if (argc >= 3 && strcmp(argv[1], "recv-lines") == 0)
        return recv_lines(argv[2], argc - 3, argv + 3);
    fprintf(stderr, "usage: test_shmchan selftest | send|recv ID COUNT | send-lines|recv-lines ID WORD...\n");
    return 2;
}
