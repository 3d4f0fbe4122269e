/*
 * tcp_echo_load: load a TCP echo server with fixed-size messages.
 *
 * Usage: tcp_echo_load HOST PORT CONNECTIONS SECONDS MESSAGE_BYTES
 *
 * Opens CONNECTIONS connections (all connected before the clock starts),
 * then, on each one, over and over: send MESSAGE_BYTES bytes, read the
 * MESSAGE_BYTES echoed back, check them, send the next. One thread, epoll,
 * non-blocking sockets, TCP_NODELAY. After SECONDS it prints one JSON line:
 * the echoed bytes received in the timed window, the messages completed, the
 * window's length, the rate in MB/s (10^6 bytes/s of echoed bytes, one
 * direction), and the errors (a connection that failed or closed, or that
 * echoed wrong bytes; it is dropped, not reopened).
 *
 * Exit status 0 if at least one connection worked, 1 otherwise, 2 on usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t sent;      /* bytes of the current message sent */
    size_t received;  /* bytes of the current message echoed back */
    int want_out;     /* EPOLLOUT registered */
    unsigned char *out;
    unsigned char *in;
};

static int epfd;
static size_t size;
static unsigned long long errors, wrong, bytes, messages;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void drop(struct conn *c, const char *why) {
    if (c->fd >= 0) {
        if (errors < 5)
            fprintf(stderr, "connection dropped: %s\n", why);
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        errors++;
    }
}

static void set_out(struct conn *c, int on, uint32_t index) {
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = index};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* Send what is left of the current message (maybe not all of it). */
static void pump_out(struct conn *c, uint32_t index) {
    while (c->sent < size) {
        ssize_t n = send(c->fd, c->out + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_out(c, 1, index);
                return;
            }
            drop(c, strerror(errno));
            return;
        }
        c->sent += (size_t)n;
    }
    set_out(c, 0, index);
}

/* Read what has been echoed; on a whole message, check it and send the next. */
static void pump_in(struct conn *c, uint32_t index, int counting) {
    for (;;) {
        if (c->received >= c->sent) /* nothing outstanding: the server cannot owe us bytes */
            return;
        ssize_t n = recv(c->fd, c->in + c->received, c->sent - c->received, 0);
        if (n == 0) {
            drop(c, "closed by the server");
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                drop(c, strerror(errno));
            return;
        }
        if (counting)
            bytes += (unsigned long long)n;
        c->received += (size_t)n;
        if (c->received == size) {
            if (memcmp(c->in, c->out, size) != 0) {
                wrong++;
                drop(c, "wrong bytes echoed");
                return;
            }
            if (counting)
                messages++;
            c->sent = c->received = 0;
            pump_out(c, index);
            if (c->fd < 0)
                return;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SECONDS MESSAGE_BYTES\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[2]), count = atoi(argv[3]);
    double seconds = atof(argv[4]);
    size = (size_t)atol(argv[5]);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || count <= 0 || seconds <= 0 || size == 0 || inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    epfd = epoll_create1(0);
    struct conn *conns = calloc((size_t)count, sizeof(struct conn));
    struct epoll_event *events = calloc((size_t)count, sizeof(struct epoll_event));
    if (epfd < 0 || !conns || !events) {
        perror("setup");
        return 1;
    }
    for (int i = 0; i < count; i++) {
        struct conn *c = &conns[i];
        c->out = malloc(size);
        c->in = malloc(size);
        for (size_t j = 0; j < size; j++)
            c->out[j] = (unsigned char)((size_t)i * 131 + j * 7);
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct timeval tv = {.tv_sec = 5};
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* bounds the blocking connect */
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
            fprintf(stderr, "connect %d: %s\n", i, strerror(errno));
            close(c->fd);
            c->fd = -1;
            errors++;
            continue;
        }
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    }
    double began = now(), end = began + seconds, t = began;
    for (int i = 0; i < count; i++)
        if (conns[i].fd >= 0)
            pump_out(&conns[i], (uint32_t)i);
    while ((t = now()) < end) {
        int ms = (int)((end - t) * 1000) + 1;
        int n = epoll_wait(epfd, events, count, ms < 100 ? ms : 100);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            struct conn *c = &conns[i];
            if (c->fd < 0)
                continue;
            if (events[k].events & EPOLLOUT)
                pump_out(c, i);
            if (c->fd >= 0 && (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                pump_in(c, i, 1);
        }
    }
    double elapsed = t - began;
    int alive = 0;
    for (int i = 0; i < count; i++)
        if (conns[i].fd >= 0) {
            alive++;
            close(conns[i].fd);
        }
    printf("{\"bytes\": %llu, \"messages\": %llu, \"seconds\": %.6f, \"mb_per_s\": %.3f, \"errors\": %llu, "
           "\"wrong\": %llu, \"connections\": %d, \"alive\": %d}\n",
           bytes, messages, elapsed, elapsed > 0 ? (double)bytes / elapsed / 1e6 : 0.0, errors, wrong, count, alive);
    return alive || messages ? 0 : 1;
}
