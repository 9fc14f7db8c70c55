#!/usr/bin/env bash
# The machine's floor for a one-at-a-time request: the p50 and p99 round trip of 16 bytes between
# two processes over loopback TCP with blocking calls and TCP_NODELAY (no server work at all).
# A client's one-at-a-time latency against any server on this machine cannot go below it.
#
#   scripts/loopback-floor.sh [ROUNDS]        (default 20000; needs gcc)
set -euo pipefail
rounds=${1:-20000}
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/floor.c" <<'C'
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int one = 1, rounds = argc > 2 ? atoi(argv[2]) : 0;
    char buffer[64] = {0};
    struct sockaddr_in address = {0};
    socklen_t length = sizeof address;
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (strcmp(argv[1], "serve") == 0) {
        int listener = socket(AF_INET, SOCK_STREAM, 0);
        if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0) return 1;
        getsockname(listener, (struct sockaddr *)&address, &length);
        printf("%d\n", ntohs(address.sin_port));
        fflush(stdout);
        int peer = accept(listener, NULL, NULL);
        setsockopt(peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (;;) {
            ssize_t n = read(peer, buffer, sizeof buffer);
            if (n <= 0) return 0;
            if (write(peer, buffer, n) != n) return 1;
        }
    }
    address.sin_port = htons(atoi(argv[1]));
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&address, sizeof address) != 0) return 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    double *took = malloc(sizeof(double) * rounds);
    for (int i = 0; i < rounds; i++) {
        double started = now_us();
        if (write(s, buffer, 16) != 16) return 1;
        for (int got = 0; got < 16;) {
            ssize_t n = read(s, buffer + got, 16 - got);
            if (n <= 0) return 1;
            got += n;
        }
        took[i] = now_us() - started;
    }
    qsort(took, rounds, sizeof(double), ascending);
    printf("loopback round trip over %d rounds: p50 %.1f us, p99 %.1f us\n", rounds, took[rounds / 2], took[rounds * 99 / 100]);
    return 0;
}
C
gcc -O2 -o "$work/floor" "$work/floor.c"
coproc SERVE { "$work/floor" serve; }
server=$SERVE_PID
read -r port <&"${SERVE[0]}"
"$work/floor" "$port" "$rounds"
