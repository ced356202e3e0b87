/*
 * The classic System V tutorial's writer, done right, in C: open the
 * channel a server made at an ftok key and send each line of standard
 * input as one message. The server gets every line whole and in order, and
 * learns that the client is gone when it exits, even if it is killed.
 *
 *   cc -I include examples/c/client.c -L target/release -lshmchan \
 *      -Wl,-rpath,"$PWD/target/release" -o client
 *   printf 'hello\nworld\n' | ./client [PATH [PROJ]]
 *
 * PATH (default /tmp/shmchan-example) and PROJ (default A) as the server's.
 * The client never creates anything: start the server first.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmchan.h"

static int report(const char *what, shmchan_status st)
{
    fprintf(stderr, "client: %s: %s (%s)\n", what, shmchan_strerror(st), shmchan_last_error_message());
    if (st == SHMCHAN_E_NOT_FOUND)
        fprintf(stderr, "client: is the server running?\n");
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/tmp/shmchan-example";
    int proj = argc > 2 ? argv[2][0] : 'A';
    shmchan_channel *chan = NULL;
    shmchan_sender *tx = NULL;
    shmchan_status st = shmchan_open_path(path, proj, &chan);
    if (st != SHMCHAN_OK)
        return report("open", st);
    st = shmchan_channel_sender(chan, &tx);
    shmchan_channel_close(chan); /* the sender is a party of its own */
    if (st != SHMCHAN_OK)
        return report("sender", st);

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long sent = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, stdin)) != -1) {
        if (n > 0 && line[n - 1] == '\n')
            n--;
        st = shmchan_send(tx, line, (size_t)n);
        if (st != SHMCHAN_OK) {
            rc = report("send", st);
            break;
        }
        sent++;
    }
    free(line);
    /* Closing the sender tells the server, after its last message. */
    shmchan_sender_close(tx);
    fprintf(stderr, "client: %lu messages sent\n", sent);
    return rc;
}
