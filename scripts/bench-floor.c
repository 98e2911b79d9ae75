/*
 * bench-floor: the least a broker can do per message, to measure the kernel's share.
 *
 * Not a broker. It speaks just enough MQTT 3.1.1 for `junction bench pubsub`: CONNECT →
 * CONNACK, SUBSCRIBE → SUBACK (one filter, exact or ending in "/+"), PUBLISH at QoS 0 or 1
 * (PUBACK to the publisher, the same bytes forwarded to every matching subscriber with a
 * packet id of its own), PINGREQ → PINGRESP. No sessions, no queues, no checks, no
 * allocation per message: one epoll_wait per batch of ready sockets, one read per ready
 * socket, and one write per connection per batch. What it costs per message in
 * `scripts/bench.sh` is what the kernel charges any broker for one read and one write on
 * loopback TCP (BENCH_BROKERS=floor).
 *
 *   gcc -O2 -o bench-floor scripts/bench-floor.c && ./bench-floor 18839
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 65536
#define RBUF 65536
#define MAX_SUBS 4096
#define MAX_TOPIC 256

struct conn {
    int open;
    uint16_t next_id;
    size_t rlen, wlen, wcap;
    int dirty; /* on the flush list of this batch */
    unsigned char *rbuf, *wbuf;
};

struct sub {
    char filter[MAX_TOPIC];
    size_t len;
    int wildcard; /* filter ends in "/+" */
    int fd;
};

static struct conn conns[MAX_FDS];
static struct sub subs[MAX_SUBS];
static int nsubs;
static int flush_list[MAX_FDS];
static int nflush;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void out(int fd, const void *p, size_t n) {
    struct conn *c = &conns[fd];
    while (c->wlen + n > c->wcap) {
        c->wcap = c->wcap ? c->wcap * 2 : 65536;
        if (!(c->wbuf = realloc(c->wbuf, c->wcap)))
            die("realloc");
    }
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += n;
    if (!c->dirty) {
        c->dirty = 1;
        flush_list[nflush++] = fd;
    }
}

static void drop(int ep, int fd) {
    struct conn *c = &conns[fd];
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    c->open = 0;
    c->rlen = c->wlen = 0;
    for (int i = 0; i < nsubs; i++)
        if (subs[i].fd == fd)
            subs[i--] = subs[--nsubs];
}

static int matches(const struct sub *s, const unsigned char *topic, size_t len) {
    if (!s->wildcard)
        return s->len == len && memcmp(s->filter, topic, len) == 0;
    size_t prefix = s->len - 1; /* "a/b/+" → "a/b/" */
    return len >= prefix && memcmp(s->filter, topic, prefix) == 0 &&
           memchr(topic + prefix, '/', len - prefix) == NULL;
}

/* One whole packet: header byte, body. */
static void handle(int fd, unsigned char type, const unsigned char *body, size_t len) {
    switch (type >> 4) {
    case 1: { /* CONNECT */
        static const unsigned char connack[] = {0x20, 2, 0, 0};
        out(fd, connack, sizeof connack);
        break;
    }
    case 3: { /* PUBLISH */
        int qos = (type >> 1) & 3;
        size_t tlen = (size_t)body[0] << 8 | body[1];
        const unsigned char *topic = body + 2;
        if (qos > 0) {
            unsigned char puback[] = {0x40, 2, body[2 + tlen], body[3 + tlen]};
            out(fd, puback, sizeof puback);
        }
        unsigned char hdr[5];
        size_t h = 1, rem = len;
        hdr[0] = type & 0xF6; /* no DUP, no RETAIN */
        do {
            unsigned char b = rem & 0x7F;
            rem >>= 7;
            hdr[h++] = b | (rem ? 0x80 : 0);
        } while (rem);
        for (int i = 0; i < nsubs; i++) {
            if (!matches(&subs[i], topic, tlen))
                continue;
            int to = subs[i].fd;
            out(to, hdr, h);
            out(to, body, 2 + tlen);
            if (qos > 0) {
                uint16_t id = ++conns[to].next_id ? conns[to].next_id : ++conns[to].next_id;
                unsigned char pid[2] = {id >> 8, id & 0xFF};
                out(to, pid, 2);
                out(to, body + 4 + tlen, len - 4 - tlen);
            } else {
                out(to, body + 2 + tlen, len - 2 - tlen);
            }
        }
        break;
    }
    case 8: { /* SUBSCRIBE: packet id, one filter, options */
        size_t flen = (size_t)body[2] << 8 | body[3];
        if (nsubs < MAX_SUBS && flen < MAX_TOPIC) {
            struct sub *s = &subs[nsubs++];
            memcpy(s->filter, body + 4, flen);
            s->len = flen;
            s->wildcard = flen >= 2 && memcmp(body + 4 + flen - 2, "/+", 2) == 0;
            s->fd = fd;
        }
        unsigned char suback[] = {0x90, 3, body[0], body[1], body[4 + flen] & 3};
        out(fd, suback, sizeof suback);
        break;
    }
    case 12: { /* PINGREQ */
        static const unsigned char pingresp[] = {0xD0, 0};
        out(fd, pingresp, sizeof pingresp);
        break;
    }
    default: /* PUBACK from subscribers, DISCONNECT (the close follows) */
        break;
    }
}

/* Handles every whole packet in the buffer; returns -1 on a malformed one. */
static int parse(int fd) {
    struct conn *c = &conns[fd];
    size_t at = 0;
    while (c->rlen - at >= 2) {
        size_t rem = 0, i = 1;
        int shift = 0;
        for (;;) {
            if (at + i >= c->rlen)
                goto partial;
            unsigned char b = c->rbuf[at + i++];
            rem |= (size_t)(b & 0x7F) << shift;
            shift += 7;
            if (!(b & 0x80))
                break;
            if (shift > 21)
                return -1;
        }
        if (rem > RBUF - 8)
            return -1;
        if (c->rlen - at - i < rem)
            break;
        handle(fd, c->rbuf[at], c->rbuf + at + i, rem);
        at += i + rem;
    }
partial:
    memmove(c->rbuf, c->rbuf + at, c->rlen - at);
    c->rlen -= at;
    return 0;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 18839;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 4096))
        die("listen");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event ready[256];
    for (;;) {
        int n = epoll_wait(ep, ready, 256, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            if (fd == ls) {
                int s;
                while ((s = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (s >= MAX_FDS) {
                        close(s);
                        continue;
                    }
                    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = &conns[s];
                    c->open = 1;
                    c->next_id = 0;
                    if (!c->rbuf && !(c->rbuf = malloc(RBUF)))
                        die("malloc");
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = s};
                    epoll_ctl(ep, EPOLL_CTL_ADD, s, &cev);
                }
                continue;
            }
            struct conn *c = &conns[fd];
            ssize_t r = read(fd, c->rbuf + c->rlen, RBUF - c->rlen);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                drop(ep, fd);
                continue;
            }
            c->rlen += (size_t)r;
            if (parse(fd) < 0)
                drop(ep, fd);
        }
        for (int i = 0; i < nflush; i++) {
            int fd = flush_list[i];
            struct conn *c = &conns[fd];
            c->dirty = 0;
            if (c->open && c->wlen) {
                size_t done = 0;
                while (done < c->wlen) {
                    ssize_t w = write(fd, c->wbuf + done, c->wlen - done);
                    if (w <= 0) {
                        if (w < 0 && errno == EAGAIN) {
                            /* A floor, not a broker: wait for this reader. */
                            struct pollfd p = {.fd = fd, .events = POLLOUT};
                            poll(&p, 1, 1000);
                            continue;
                        }
                        break;
                    }
                    done += (size_t)w;
                }
            }
            c->wlen = 0;
        }
        nflush = 0;
    }
}
