/*
 * The classic System V tutorial's reader, done right, in C: create a
 * channel at an ftok key, then print every message a client sends, whole
 * and in order, until the client disconnects (even if it is killed) or
 * Ctrl-C. The channel is removed when both programs are gone.
 *
 *   cc -I include examples/c/server.c -L target/release -lshmchan \
 *      -Wl,-rpath,"$PWD/target/release" -o server
 *   ./server [PATH [PROJ]]
 *
 * or, after ffi/install.sh: cc examples/c/server.c $(pkg-config --cflags
 * --libs shmchan) -o server. PATH (default /tmp/shmchan-example, created
 * if missing) and PROJ (a character, default A) make the key; the Rust
 * examples (cargo run --example client) use the same defaults, so either
 * language's client talks to either server.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shmchan.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Prints what failed, with the library's message; returns 1. */
static int report(const char *what, shmchan_status st)
{
    fprintf(stderr, "server: %s: %s (%s)\n", what, shmchan_strerror(st), shmchan_last_error_message());
    return 1;
}

/* Prints messages until the client disconnects or Ctrl-C. */
static int serve(shmchan_receiver *rx)
{
    char buf[65536];
    unsigned long count = 0;
    for (;;) {
        size_t len = 0;
        /* A tick of 200 ms, to look at the Ctrl-C flag. */
        shmchan_status st = shmchan_recv_timeout(rx, buf, sizeof buf, &len, 200000000);
        if (st == SHMCHAN_OK) {
            printf("[%lu] %.*s\n", ++count, (int)len, buf);
            fflush(stdout);
        } else if (st == SHMCHAN_E_TIMEOUT && interrupted) {
            printf("server: interrupted (%lu messages received)\n", count);
            return 0;
        } else if (st == SHMCHAN_E_DISCONNECTED) {
            printf("server: the client disconnected (%lu messages received)\n", count);
            return 0;
        } else if (st == SHMCHAN_E_BUFFER_TOO_SMALL) {
            fprintf(stderr, "server: a message of %zu bytes is too long for this server\n", len);
            return 1;
        } else if (st != SHMCHAN_E_TIMEOUT) {
            return report("receive", st);
        }
    }
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/tmp/shmchan-example";
    int proj = argc > 2 ? argv[2][0] : 'A';
    int fd = open(path, O_CREAT | O_RDONLY, 0644); /* ftok needs the file */
    if (fd == -1) {
        perror(path);
        return 1;
    }
    close(fd);

    /* replace_stale: a server killed by SIGKILL leaves a channel with no
     * party alive; replace it rather than fail. A live one is never
     * replaced. */
    shmchan_options opts;
    shmchan_options_init(&opts);
    opts.flags = SHMCHAN_REPLACE_STALE;
    shmchan_channel *chan = NULL;
    shmchan_receiver *rx = NULL;
    shmchan_status st = shmchan_create_path(path, proj, &opts, &chan);
    if (st != SHMCHAN_OK)
        return report("create", st);
    st = shmchan_channel_receiver(chan, &rx);
    if (st != SHMCHAN_OK) {
        shmchan_channel_close(chan);
        return report("receiver", st);
    }
    int32_t key = 0, id = 0;
    shmchan_channel_key(chan, &key);
    shmchan_channel_id(chan, &id);
    printf("server: channel at key 0x%08x (ftok of %s and '%c'), shmid %d\n", (unsigned)key, path, proj, id);
    printf("server: waiting for a client; Ctrl-C to stop\n");
    fflush(stdout);
    signal(SIGINT, on_sigint);

    int rc = serve(rx);
    /* The last party out removes the channel. */
    shmchan_receiver_close(rx);
    shmchan_channel_close(chan);
    return rc;
}
