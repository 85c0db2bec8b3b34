/*
 * The native floor: the naive baseline's bridge written in C, so the benchmark can say how far the gateway is
 * from what the machine itself costs. One thread, one epoll set, no features: the same wire behaviour as
 * naive_bridge.py (connect -> answer, little-endian PCM swapped to L16 RTP and back, an RTCP sender report
 * with CNAME = CallId after the first packet, a BYE at hangup, one 20 ms frame back to the websocket every
 * 20 ms when a whole one is there), nothing more. `python -m loadtest bench` compiles it with the system C
 * compiler when it starts.
 *
 *     cc -O2 -o native_bridge native_bridge.c && ./native_bridge 127.0.0.1:9000 127.0.0.1:40100
 *
 * It prints {"event": "native.listening", "port": N} when it listens, and stops on SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 65536
#define READ_BUFFER (256 * 1024)
#define RETURN_CAP (5 * 2 * 96000)  /* 5 s of audio at the highest Sinch rate */
#define FRAME_NS 20000000LL
#define TICK_NS 5000000LL
#define DYNAMIC_PT 96
#define KIND_LISTEN 1
#define KIND_TIMER 2
#define KIND_TCP 3
#define KIND_UDP 4

/* ---- SHA-1 (FIPS 180-4 §6.1), for the websocket accept key (RFC 6455 §4.2.2) ---- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const unsigned char *data, size_t size, unsigned char digest[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t padded = ((size + 8) / 64 + 1) * 64;
    unsigned char *message = calloc(padded, 1);
    memcpy(message, data, size);
    message[size] = 0x80;
    uint64_t bits = (uint64_t)size * 8;
    for (int i = 0; i < 8; i++) message[padded - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t block = 0; block < padded; block += 64) {
        uint32_t w[80];
        for (int t = 0; t < 16; t++) {
            const unsigned char *p = message + block + 4 * t;
            w[t] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        }
        for (int t = 16; t < 80; t++) w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int t = 0; t < 80; t++) {
            uint32_t f, k;
            if (t < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (t < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (t < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            uint32_t temp = rol(a, 5) + f + e + k + w[t];
            e = d; d = c; c = rol(b, 30); b = a; a = temp;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    free(message);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) digest[4 * i + j] = (unsigned char)(h[i] >> (24 - 8 * j));
}

static void base64(const unsigned char *data, size_t size, char *out) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < size ? (uint32_t)data[i + 1] << 8 : 0) |
                     (i + 2 < size ? data[i + 2] : 0);
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = i + 1 < size ? alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < size ? alphabet[v & 63] : '=';
    }
    out[o] = 0;
}

/* ---- connections ---- */

typedef struct Call {
    int kind;
    int tcp;               /* the websocket's descriptor */
    int rtp, rtcp;         /* connected to the media service */
    int upgraded, answered;
    unsigned char *in;     /* bytes read and not yet parsed */
    size_t in_size;
    unsigned char *out;    /* bytes the kernel did not take yet */
    size_t out_size, out_cap;
    unsigned char *back;   /* audio from the media service, little-endian, waiting for its 20 ms slot */
    size_t back_size;
    size_t frame_bytes;
    uint32_t ssrc, timestamp;
    uint16_t sequence;
    uint32_t packets, octets;
    long long next_frame_ns;
    char call_id[256];
} Call;

typedef struct { int kind; Call *call; } Tag;

static int epoll_fd;
static struct sockaddr_in media;
static Call *calls[MAX_CONNECTIONS];
static Tag tcp_tags[MAX_CONNECTIONS], udp_tags[MAX_CONNECTIONS];
static volatile sig_atomic_t stopping;
static int highest_fd;  /* the tick visits descriptors up to here, not the whole table */

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void watch(int fd, Tag *tag, uint32_t events, int op) {
    struct epoll_event event = {.events = events, .data.ptr = tag};
    epoll_ctl(epoll_fd, op, fd, &event);
}

/* What the kernel did not take waits in `out`; the socket is watched for EPOLLOUT only meanwhile. */
static void flush_out(Call *call) {
    int was_pending = call->out_size > 0;
    while (call->out_size) {
        ssize_t sent = send(call->tcp, call->out, call->out_size, MSG_NOSIGNAL);
        if (sent <= 0) break;
        memmove(call->out, call->out + sent, call->out_size - (size_t)sent);
        call->out_size -= (size_t)sent;
    }
    if (was_pending != (call->out_size > 0))
        watch(call->tcp, &tcp_tags[call->tcp], EPOLLIN | (call->out_size ? EPOLLOUT : 0), EPOLL_CTL_MOD);
}

static void write_tcp(Call *call, const unsigned char *data, size_t size) {
    if (!call->out_size) {
        ssize_t sent = send(call->tcp, data, size, MSG_NOSIGNAL);
        if (sent == (ssize_t)size) return;
        if (sent < 0) sent = 0;
        data += sent;
        size -= (size_t)sent;
    }
    if (call->out_size + size > call->out_cap) {
        call->out_cap = (call->out_size + size) * 2;
        call->out = realloc(call->out, call->out_cap);
    }
    int was_pending = call->out_size > 0;
    memcpy(call->out + call->out_size, data, size);
    call->out_size += size;
    if (!was_pending) watch(call->tcp, &tcp_tags[call->tcp], EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
}

static void send_frame(Call *call, int opcode, const unsigned char *payload, size_t size) {
    unsigned char frame[14 + 4096];
    size_t header = 2;
    frame[0] = (unsigned char)(0x80 | opcode);
    if (size < 126) {
        frame[1] = (unsigned char)size;
    } else if (size < 65536) {
        frame[1] = 126; frame[2] = (unsigned char)(size >> 8); frame[3] = (unsigned char)size; header = 4;
    } else {
        return;  /* no frame this bridge sends is that large */
    }
    if (size > sizeof frame - header) return;
    memcpy(frame + header, payload, size);
    write_tcp(call, frame, header + size);
}

/* RTCP (RFC 3550 §6.4.1, §6.5, §6.6): an SR or an empty RR, SDES CNAME = CallId, and a BYE when ending. */
static void send_rtcp(Call *call, int bye) {
    unsigned char packet[512];
    size_t n = 0;
    if (bye) {
        packet[n++] = 0x80; packet[n++] = 201; packet[n++] = 0; packet[n++] = 1;
    } else {
        packet[n++] = 0x80; packet[n++] = 200; packet[n++] = 0; packet[n++] = 6;
    }
    uint32_t fields[6] = {call->ssrc, 0, 0, call->timestamp, call->packets, call->octets};
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    fields[1] = (uint32_t)(real.tv_sec + 2208988800LL);
    fields[2] = (uint32_t)((double)real.tv_nsec / 1e9 * 4294967296.0);
    for (int i = 0; i < (bye ? 1 : 6); i++) {
        uint32_t v = htonl(fields[i]);
        memcpy(packet + n, &v, 4);
        n += 4;
    }
    size_t length = strlen(call->call_id), chunk = 4 + 2 + length, nulls = 4 - chunk % 4;
    packet[n++] = 0x81; packet[n++] = 202;
    uint16_t words = htons((uint16_t)((chunk + nulls) / 4));
    memcpy(packet + n, &words, 2); n += 2;
    uint32_t ssrc = htonl(call->ssrc);
    memcpy(packet + n, &ssrc, 4); n += 4;
    packet[n++] = 1; packet[n++] = (unsigned char)length;
    memcpy(packet + n, call->call_id, length); n += length;
    memset(packet + n, 0, nulls); n += nulls;
    if (bye) {
        packet[n++] = 0x81; packet[n++] = 203; packet[n++] = 0; packet[n++] = 1;
        memcpy(packet + n, &ssrc, 4); n += 4;
    }
    send(call->rtcp, packet, n, 0);
}

static int udp_to(uint16_t port) {
    struct sockaddr_in to = media;
    to.sin_port = htons(port);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    connect(fd, (struct sockaddr *)&to, sizeof to);
    return fd;
}

/* The connect command: {"command":"connect", "callId":..., "sampleRate":...}, as the load generator sends it. */
static void on_connect(Call *call, const char *text) {
    int rate = 8000;
    const char *found = strstr(text, "ampleRate\"");
    if (found && (found = strchr(found + 10, ':'))) rate = atoi(found + 1);
    found = strstr(text, "allId\"");
    if (found && (found = strchr(found + 6, '"'))) {
        const char *end = strchr(found + 1, '"');
        size_t length = end ? (size_t)(end - found - 1) : 0;
        if (length >= sizeof call->call_id) length = sizeof call->call_id - 1;
        memcpy(call->call_id, found + 1, length);
        call->call_id[length] = 0;
    }
    call->frame_bytes = (size_t)rate / 50 * 2;
    call->rtp = udp_to(ntohs(media.sin_port));
    call->rtcp = udp_to((uint16_t)(ntohs(media.sin_port) + 1));
    udp_tags[call->rtp] = (Tag){KIND_UDP, call};
    watch(call->rtp, &udp_tags[call->rtp], EPOLLIN, EPOLL_CTL_ADD);
    getrandom(&call->ssrc, sizeof call->ssrc, 0);
    getrandom(&call->sequence, sizeof call->sequence, 0);
    getrandom(&call->timestamp, sizeof call->timestamp, 0);
    call->next_frame_ns = now_ns() + FRAME_NS;
    call->answered = 1;
    const char *answer = "{\"command\":\"answer\"}";
    send_frame(call, 0x1, (const unsigned char *)answer, strlen(answer));
}

static void on_audio(Call *call, const unsigned char *pcm, size_t size) {
    unsigned char packet[12 + 65536];
    size &= ~(size_t)1;
    if (!call->answered || size > 65536) return;
    packet[0] = 0x80;
    packet[1] = (unsigned char)(DYNAMIC_PT | (call->packets == 0 ? 0x80 : 0));
    uint16_t sequence = htons(call->sequence++);
    uint32_t timestamp = htonl(call->timestamp), ssrc = htonl(call->ssrc);
    memcpy(packet + 2, &sequence, 2);
    memcpy(packet + 4, &timestamp, 4);
    memcpy(packet + 8, &ssrc, 4);
    for (size_t i = 0; i < size; i += 2) { packet[12 + i] = pcm[i + 1]; packet[13 + i] = pcm[i]; }
    send(call->rtp, packet, 12 + size, 0);
    call->timestamp += (uint32_t)(size / 2);
    call->packets++;
    call->octets += (uint32_t)size;
    if (call->packets == 1) send_rtcp(call, 0);
}

static void end_call(Call *call) {
    tcp_tags[call->tcp].call = NULL;  /* events already fetched for it are skipped */
    if (call->rtp) {
        udp_tags[call->rtp].call = NULL;
        send_rtcp(call, 1);
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, call->rtp, NULL);
        close(call->rtp);
        close(call->rtcp);
    }
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, call->tcp, NULL);
    close(call->tcp);
    calls[call->tcp] = NULL;
    free(call->in); free(call->out); free(call->back); free(call);
}

static const char *GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Returns 0 once the request is answered, -1 to drop the connection, 1 to wait for more bytes. */
static int on_upgrade(Call *call) {
    call->in[call->in_size] = 0;
    char *end = strstr((char *)call->in, "\r\n\r\n");
    if (!end) return call->in_size > 16384 ? -1 : 1;
    char *key = strcasestr((char *)call->in, "\r\nSec-WebSocket-Key:");
    if (!key) return -1;
    key += 20;
    while (*key == ' ') key++;
    char joined[128];
    size_t length = strcspn(key, "\r\n");
    if (length > 60) return -1;
    memcpy(joined, key, length);
    strcpy(joined + length, GUID);
    unsigned char digest[20];
    char accept[32], response[256];
    sha1((unsigned char *)joined, strlen(joined), digest);
    base64(digest, 20, accept);
    int n = snprintf(response, sizeof response, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    write_tcp(call, (unsigned char *)response, (size_t)n);
    size_t used = (size_t)(end + 4 - (char *)call->in);
    memmove(call->in, call->in + used, call->in_size - used);
    call->in_size -= used;
    call->upgraded = 1;
    return 0;
}

/* Parses whole frames (RFC 6455 §5.2); returns -1 when the call ends. */
static int on_frames(Call *call) {
    size_t offset = 0;
    while (call->in_size - offset >= 2) {
        unsigned char *p = call->in + offset;
        int opcode = p[0] & 0x0F, masked = p[1] & 0x80;
        uint64_t size = p[1] & 0x7F;
        size_t header = 2;
        if (size == 126) {
            if (call->in_size - offset < 4) break;
            size = (uint64_t)p[2] << 8 | p[3]; header = 4;
        } else if (size == 127) {
            if (call->in_size - offset < 10) break;
            size = 0;
            for (int i = 0; i < 8; i++) size = size << 8 | p[2 + i];
            header = 10;
        }
        if (size > READ_BUFFER) return -1;
        size_t total = header + (masked ? 4 : 0) + (size_t)size;
        if (call->in_size - offset < total) break;
        unsigned char *payload = p + header + (masked ? 4 : 0);
        if (masked)
            for (uint64_t i = 0; i < size; i++) payload[i] ^= p[header + (i & 3)];
        if (opcode == 0x1) {
            char saved = (char)payload[size];
            payload[size] = 0;
            if (!call->answered) on_connect(call, (char *)payload);
            payload[size] = (unsigned char)saved;
        } else if (opcode == 0x2) {
            on_audio(call, payload, (size_t)size);
        } else if (opcode == 0x8) {
            send_frame(call, 0x8, payload, size >= 2 ? 2 : 0);
            return -1;
        } else if (opcode == 0x9) {
            send_frame(call, 0xA, payload, (size_t)size);
        }
        offset += total;
    }
    memmove(call->in, call->in + offset, call->in_size - offset);
    call->in_size -= offset;
    return 0;
}

static void on_tcp(Call *call, uint32_t events) {
    if (events & EPOLLOUT) flush_out(call);
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    ssize_t got = recv(call->tcp, call->in + call->in_size, READ_BUFFER - call->in_size, 0);
    if (got == 0 || (got < 0 && errno != EAGAIN)) { end_call(call); return; }
    if (got < 0) return;
    call->in_size += (size_t)got;
    if (!call->upgraded) {
        int state = on_upgrade(call);
        if (state < 0) { end_call(call); return; }
        if (state > 0) return;
    }
    if (on_frames(call) < 0) end_call(call);
}

static void on_udp(Call *call) {
    unsigned char packet[65536];
    ssize_t got = recv(call->rtp, packet, sizeof packet, 0);
    if (got < 12 || (packet[0] >> 6) != 2) return;
    size_t offset = 12 + 4 * (size_t)(packet[0] & 0x0F);
    if ((packet[0] & 0x10) && (size_t)got >= offset + 4) offset += 4 + 4 * (size_t)(packet[offset + 2] << 8 | packet[offset + 3]);
    if ((size_t)got <= offset) return;
    size_t size = ((size_t)got - offset) & ~(size_t)1;
    if (call->back_size + size > RETURN_CAP) return;
    for (size_t i = 0; i < size; i += 2) {
        call->back[call->back_size + i] = packet[offset + i + 1];
        call->back[call->back_size + i + 1] = packet[offset + i];
    }
    call->back_size += size;
}

/* Every 20 ms of a call's own clock, one frame of what came back, if a whole one is there. */
static void on_tick(void) {
    long long now = now_ns();
    for (int fd = 0; fd <= highest_fd; fd++) {
        Call *call = calls[fd];
        if (!call || !call->answered || now < call->next_frame_ns) continue;
        while (call->next_frame_ns <= now) call->next_frame_ns += FRAME_NS;
        if (call->back_size >= call->frame_bytes) {
            send_frame(call, 0x2, call->back, call->frame_bytes);
            memmove(call->back, call->back + call->frame_bytes, call->back_size - call->frame_bytes);
            call->back_size -= call->frame_bytes;
        }
    }
}

static void stop(int signum) { (void)signum; stopping = 1; }

static int parse_address(const char *text, struct sockaddr_in *address) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || colon - text >= (long)sizeof host) return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    memset(address, 0, sizeof *address);
    address->sin_family = AF_INET;
    address->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &address->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
    struct sockaddr_in listen_at;
    if (argc != 3 || parse_address(argv[1], &listen_at) || parse_address(argv[2], &media)) {
        fprintf(stderr, "usage: native_bridge LISTEN_HOST:PORT MEDIA_HOST:PORT\n");
        return 2;
    }
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&listen_at, sizeof listen_at) || listen(listener, 4096)) {
        perror("native_bridge: listen");
        return 3;
    }
    socklen_t length = sizeof listen_at;
    getsockname(listener, (struct sockaddr *)&listen_at, &length);
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    static Tag listen_tag = {KIND_LISTEN, NULL}, timer_tag = {KIND_TIMER, NULL};
    watch(listener, &listen_tag, EPOLLIN, EPOLL_CTL_ADD);
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec every = {{0, TICK_NS}, {0, TICK_NS}};
    timerfd_settime(timer, 0, &every, NULL);
    watch(timer, &timer_tag, EPOLLIN, EPOLL_CTL_ADD);
    printf("{\"event\": \"native.listening\", \"port\": %d}\n", ntohs(listen_at.sin_port));
    fflush(stdout);
    struct epoll_event events[256];
    while (!stopping) {
        int ready = epoll_wait(epoll_fd, events, 256, 100);
        for (int i = 0; i < ready; i++) {
            Tag *tag = events[i].data.ptr;
            if (tag->kind == KIND_LISTEN) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (fd >= MAX_CONNECTIONS) { close(fd); continue; }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    Call *call = calloc(1, sizeof *call);
                    call->kind = KIND_TCP;
                    call->tcp = fd;
                    call->in = malloc(READ_BUFFER + 1);
                    call->back = malloc(RETURN_CAP);
                    calls[fd] = call;
                    if (fd > highest_fd) highest_fd = fd;
                    tcp_tags[fd] = (Tag){KIND_TCP, call};
                    watch(fd, &tcp_tags[fd], EPOLLIN, EPOLL_CTL_ADD);
                }
            } else if (tag->kind == KIND_TIMER) {
                uint64_t expirations;
                if (read(timer, &expirations, sizeof expirations) > 0) on_tick();
            } else if (!tag->call) {
                continue;  /* its call ended earlier in this round */
            } else if (tag->kind == KIND_TCP) {
                on_tcp(tag->call, events[i].events);
            } else {
                on_udp(tag->call);
            }
        }
    }
    return 0;
}
