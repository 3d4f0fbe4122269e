/*
 * udp_echo_load: load a UDP echo server with small datagrams.
 *
 * Usage: udp_echo_load HOST PORT SOCKETS WINDOW SECONDS DATAGRAM_BYTES
 *
 * Opens SOCKETS UDP sockets, each connect()ed to the server (so each has its
 * own source port and receives only the server's replies), and keeps WINDOW
 * datagrams in flight on each: every reply received is counted and answered
 * with a new datagram. One thread, epoll, non-blocking sockets.
 *
 * Lost datagrams must not stall it: every 10 ms a timer looks at each
 * socket, and one that has datagrams in flight but has received no reply
 * for 100 ms counts them as lost and sends a fresh window. Each datagram
 * carries its socket's index and a sequence number, so a reply to a datagram
 * already counted lost that still comes later is counted as a reply ("late")
 * but does not open the window further.
 *
 * After SECONDS it prints one JSON line: the replies received in the timed
 * window, the datagrams sent, the window's length, replies/s, the number of
 * window refills (timeouts), the datagrams counted as lost, the late replies
 * among those, replies whose size or socket index was wrong, and send/receive errors (ECONNREFUSED: nothing listening).
 *
 * Exit status 0 if any reply came, 1 otherwise, 2 on usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STALL_SECONDS 0.100
#define TIMER_MS 10

struct sock {
    int fd;
    int in_flight;
    uint32_t seq;   /* the next datagram's sequence number */
    uint32_t epoch; /* sequence numbers below it were counted lost */
    double last;    /* last reply, or last refill */
};

static size_t size;
static unsigned long long replies, sent, refills, lost, late, wrong, errors;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Send until WINDOW datagrams are in flight (or the socket buffer is full). */
static void refill(struct sock *s, uint32_t index, int window) {
    unsigned char buf[65536];
    memset(buf, 'x', size);
    while (s->in_flight < window) {
        uint32_t header[2] = {index, s->seq};
        memcpy(buf, header, size < sizeof header ? size : sizeof header);
        ssize_t n = send(s->fd, buf, size, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                errors++;
            return;
        }
        s->seq++;
        s->in_flight++;
        sent++;
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT SOCKETS WINDOW SECONDS DATAGRAM_BYTES\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[2]), count = atoi(argv[3]), window = atoi(argv[4]);
    double seconds = atof(argv[5]);
    size = (size_t)atol(argv[6]);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || count <= 0 || window <= 0 || seconds <= 0 || size < 8 || size > 65507 ||
        inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    int epfd = epoll_create1(0);
    struct sock *socks = calloc((size_t)count, sizeof(struct sock));
    struct epoll_event *events = calloc((size_t)count, sizeof(struct epoll_event));
    if (epfd < 0 || !socks || !events) {
        perror("setup");
        return 1;
    }
    for (int i = 0; i < count; i++) {
        struct sock *s = &socks[i];
        s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
            perror("socket/connect");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
    }
    unsigned char buf[65536];
    double began = now(), end = began + seconds, t = began, next_timer = began + TIMER_MS / 1000.0;
    for (int i = 0; i < count; i++) {
        socks[i].last = began;
        refill(&socks[i], (uint32_t)i, window);
    }
    while ((t = now()) < end) {
        int n = epoll_wait(epfd, events, count, TIMER_MS);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        t = now();
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            struct sock *s = &socks[i];
            for (;;) {
                ssize_t got = recv(s->fd, buf, sizeof buf, 0);
                if (got < 0) {
                    if (errno == EINTR)
                        continue;
                    if (errno != EAGAIN && errno != EWOULDBLOCK)
                        errors++;
                    break;
                }
                uint32_t header[2];
                memcpy(header, buf, sizeof header);
                if ((size_t)got != size || header[0] != i) {
                    wrong++;
                    continue;
                }
                if (t < end)
                    replies++;
                if (header[1] - s->epoch < 0x80000000u) { /* sent since the last timeout (wrapping) */
                    if (s->in_flight > 0)
                        s->in_flight--;
                    s->last = t;
                } else {
                    late++;
                }
            }
            refill(s, i, window);
        }
        if (t >= next_timer) {
            next_timer = t + TIMER_MS / 1000.0;
            for (int i = 0; i < count; i++) {
                struct sock *s = &socks[i];
                if (s->in_flight > 0 && t - s->last > STALL_SECONDS) {
                    refills++;
                    lost += (unsigned long long)s->in_flight;
                    s->in_flight = 0;
                    s->epoch = s->seq;
                    s->last = t;
                    refill(s, (uint32_t)i, window);
                } else if (s->in_flight < window) {
                    refill(s, (uint32_t)i, window);
                }
            }
        }
    }
    double elapsed = t - began;
    for (int i = 0; i < count; i++)
        close(socks[i].fd);
    printf("{\"replies\": %llu, \"sent\": %llu, \"seconds\": %.6f, \"per_s\": %.1f, \"refills\": %llu, "
           "\"lost\": %llu, \"late\": %llu, \"wrong\": %llu, \"errors\": %llu, \"sockets\": %d, \"window\": %d}\n",
           replies, sent, elapsed, elapsed > 0 ? (double)replies / elapsed : 0.0, refills, lost, late, wrong, errors,
           count, window);
    return replies ? 0 : 1;
}
