/* preload_matrix — a plain C client exercising the shim the way applications do. It is NOT linked with the
 * shim: the test runner starts it under slm-run (LD_PRELOAD), exactly like an unmodified program.
 *
 *   preload_matrix CASE [HOST PORT [ARG [ARG2]]]
 *
 * Prints "ok CASE" and exits 0 on success; prints "FAIL ..." lines and exits 1 otherwise. Every wait is
 * bounded (poll/select/epoll timeouts), nothing sleeps. Echo cases expect a line-echo server at HOST:PORT. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 20000

static int failures;
#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, " (errno %d %s)\n", errno, strerror(errno));  \
            ++failures;                                                   \
            return false;                                                 \
        }                                                                 \
    } while (0)

static const char* g_host;
static uint16_t g_port;
static const char* g_self;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static socklen_t make_address(const char* host, uint16_t port, int family, struct sockaddr_storage* out) {
    memset(out, 0, sizeof *out);
    if (family == AF_INET6) {
        struct sockaddr_in6* in6 = (struct sockaddr_in6*)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
            char mapped[64];
            snprintf(mapped, sizeof mapped, "::ffff:%s", host);
            inet_pton(AF_INET6, mapped, &in6->sin6_addr);
        }
        return sizeof *in6;
    }
    struct sockaddr_in* in = (struct sockaddr_in*)out;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, host, &in->sin_addr);
    return sizeof *in;
}

static void set_nonblocking(int fd, bool on) {
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}

/* Waits for `events` (POLLIN/POLLOUT) on fd with the given mechanism; returns the revents seen (0 on timeout). */
enum wait_mode { MODE_POLL, MODE_SELECT, MODE_EPOLL_LT, MODE_EPOLL_ET };

static int wait_for(int fd, short events, enum wait_mode mode, int epfd) {
    switch (mode) {
    case MODE_POLL: {
        struct pollfd p = {fd, events, 0};
        return poll(&p, 1, WAIT_MS) == 1 ? p.revents : 0;
    }
    case MODE_SELECT: {
        fd_set r, w, e;
        FD_ZERO(&r);
        FD_ZERO(&w);
        FD_ZERO(&e);
        if (events & POLLIN) FD_SET(fd, &r);
        if (events & POLLOUT) FD_SET(fd, &w);
        FD_SET(fd, &e);
        struct timeval tv = {WAIT_MS / 1000, 0};
        if (select(fd + 1, &r, &w, &e, &tv) <= 0) return 0;
        return (FD_ISSET(fd, &r) ? POLLIN : 0) | (FD_ISSET(fd, &w) ? POLLOUT : 0) | (FD_ISSET(fd, &e) ? POLLPRI : 0);
    }
    case MODE_EPOLL_LT:
    case MODE_EPOLL_ET: {
        struct epoll_event ev = {.events = (uint32_t)((events & POLLIN ? EPOLLIN : 0) | (events & POLLOUT ? EPOLLOUT : 0) |
                                                      (mode == MODE_EPOLL_ET ? EPOLLET : 0)),
                                 .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) != 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return 0;
        struct epoll_event out;
        if (epoll_wait(epfd, &out, 1, WAIT_MS) != 1) return 0;
        return (out.events & EPOLLIN ? POLLIN : 0) | (out.events & EPOLLOUT ? POLLOUT : 0) |
               (out.events & EPOLLERR ? POLLERR : 0) | (out.events & EPOLLHUP ? POLLHUP : 0);
    }
    }
    return 0;
}

/* Writes all of msg, then reads until the same bytes came back (the server echoes). */
static bool echo_roundtrip(int fd, const char* msg, enum wait_mode mode, int epfd) {
    size_t len = strlen(msg);
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = write(fd, msg + sent, len - sent);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            CHECK(wait_for(fd, POLLOUT, mode, epfd) != 0, "writable");
            continue;
        }
        CHECK(n > 0, "write");
        sent += (size_t)n;
    }
    char buf[4096];
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n < 0 && errno == EAGAIN) {
            CHECK(wait_for(fd, POLLIN, mode, epfd) & (POLLIN | POLLHUP | POLLERR), "readable");
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        CHECK(n > 0, "read after %zu of %zu bytes", got, len);
        got += (size_t)n;
        if (mode == MODE_EPOLL_ET) continue;  // ET: keep reading until EAGAIN before waiting again
    }
    CHECK(got == len && memcmp(buf, msg, len) == 0, "echo mismatch: got %zu bytes", got);
    return true;
}

static int tcp_socket(int family, bool nonblocking) {
    return socket(family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
}

static bool connect_blocking(int fd, const char* host, uint16_t port, int family) {
    struct sockaddr_storage sa;
    socklen_t len = make_address(host, port, family, &sa);
    CHECK(connect(fd, (struct sockaddr*)&sa, len) == 0, "connect %s:%u", host, (unsigned)port);
    return true;
}

static bool peer_is(int fd, const char* host, uint16_t port, int family) {
    struct sockaddr_storage peer, want;
    socklen_t len = sizeof peer;
    socklen_t want_len = make_address(host, port, family, &want);
    CHECK(getpeername(fd, (struct sockaddr*)&peer, &len) == 0, "getpeername");
    CHECK(len == want_len, "getpeername length %u, want %u", (unsigned)len, (unsigned)want_len);
    if (family == AF_INET) {
        struct sockaddr_in* a = (struct sockaddr_in*)&peer;
        struct sockaddr_in* b = (struct sockaddr_in*)&want;
        char text[64];
        inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
        CHECK(a->sin_family == AF_INET && a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port,
              "peer %s:%u, want %s:%u", text, (unsigned)ntohs(a->sin_port), host, (unsigned)port);
    } else {
        struct sockaddr_in6* a = (struct sockaddr_in6*)&peer;
        struct sockaddr_in6* b = (struct sockaddr_in6*)&want;
        char text[64];
        inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
        CHECK(a->sin6_family == AF_INET6 && memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0 && a->sin6_port == b->sin6_port,
              "peer [%s]:%u", text, (unsigned)ntohs(a->sin6_port));
    }
    return true;
}

/* ---- Cases that need slmd + the modem ------------------------------------------------------------------ */

static bool parse_mode(const char* name, enum wait_mode* mode) {
    if (strcmp(name, "poll") == 0) *mode = MODE_POLL;
    else if (strcmp(name, "select") == 0) *mode = MODE_SELECT;
    else if (strcmp(name, "epoll-lt") == 0) *mode = MODE_EPOLL_LT;
    else if (strcmp(name, "epoll-et") == 0) *mode = MODE_EPOLL_ET;
    else return false;
    return true;
}

static bool case_echo(const char* mode_name, bool nonblocking) {
    enum wait_mode mode;
    CHECK(parse_mode(mode_name, &mode), "mode %s", mode_name);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    int fd = tcp_socket(AF_INET, nonblocking);
    struct sockaddr_storage sa;
    socklen_t len = make_address(g_host, g_port, AF_INET, &sa);
    int rc = connect(fd, (struct sockaddr*)&sa, len);
    if (nonblocking) {
        CHECK(rc == 0 || errno == EINPROGRESS, "non-blocking connect");
        CHECK(wait_for(fd, POLLOUT, mode, epfd) & POLLOUT, "writable after connect");
        int error = -1;
        socklen_t elen = sizeof error;
        CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &elen) == 0 && error == 0, "SO_ERROR %d", error);
    } else {
        CHECK(rc == 0, "blocking connect");
        set_nonblocking(fd, true);
    }
    if (!echo_roundtrip(fd, "hello through the modem\n", mode, epfd)) return false;
    if (!echo_roundtrip(fd, "second line +++ with the escape\n", mode, epfd)) return false;
    if (!peer_is(fd, g_host, g_port, AF_INET)) return false;
    close(fd);
    close(epfd);
    return true;
}

static bool case_epoll_before_connect(void) {
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    int fd = tcp_socket(AF_INET, true);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = fd};
    CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl before connect");
    struct sockaddr_storage sa;
    socklen_t len = make_address(g_host, g_port, AF_INET, &sa);
    CHECK(connect(fd, (struct sockaddr*)&sa, len) == 0 || errno == EINPROGRESS, "connect");
    struct epoll_event out;
    CHECK(epoll_wait(epfd, &out, 1, WAIT_MS) == 1 && (out.events & EPOLLOUT), "EPOLLOUT from the early registration");
    const char* msg = "registered before connect\n";
    CHECK(write(fd, msg, strlen(msg)) == (ssize_t)strlen(msg), "write");
    char buf[256];
    size_t got = 0;
    while (got < strlen(msg)) {
        CHECK(epoll_wait(epfd, &out, 1, WAIT_MS) == 1, "epoll_wait for the echo");
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n < 0 && errno == EAGAIN) continue;
        CHECK(n > 0, "read");
        got += (size_t)n;
    }
    CHECK(memcmp(buf, msg, got) == 0, "echo");
    close(fd);
    close(epfd);
    return true;
}

static bool expect_connect_error(int expected, bool nonblocking) {
    int fd = tcp_socket(AF_INET, nonblocking);
    struct sockaddr_storage sa;
    socklen_t len = make_address(g_host, g_port, AF_INET, &sa);
    int64_t start = now_ms();
    int rc = connect(fd, (struct sockaddr*)&sa, len);
    if (!nonblocking) {
        CHECK(rc == -1 && errno == expected, "connect gave %d, want errno %d (%s)", rc, expected, strerror(expected));
        printf("connect failed as expected after %lld ms\n", (long long)(now_ms() - start));
        close(fd);
        return true;
    }
    CHECK(rc == -1 && errno == EINPROGRESS, "non-blocking connect");
    /* The socket is writable at once (slmd buffers early writes); the failure arrives as a reset. */
    struct pollfd p = {fd, POLLIN, 0};
    CHECK(poll(&p, 1, WAIT_MS) == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR)), "failure seen");
    int error = -1;
    socklen_t elen = sizeof error;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &elen) == 0, "getsockopt");
    CHECK(error == expected, "SO_ERROR %d (%s), want %d", error, strerror(error), expected);
    char c;
    errno = 0;
    ssize_t n = read(fd, &c, 1);
    CHECK(n == 0 || (n < 0 && (errno == ECONNRESET || errno == expected)), "read after failure: %zd", n);
    /* connect() again reports the outcome too. */
    CHECK(connect(fd, (struct sockaddr*)&sa, len) == -1 && errno == expected, "connect retry");
    close(fd);
    return true;
}

static bool case_dup(void) {
    int fd = tcp_socket(AF_INET, false);
    if (!connect_blocking(fd, g_host, g_port, AF_INET)) return false;
    int a = dup(fd);
    CHECK(a >= 0, "dup");
    CHECK(close(fd) == 0, "close original");
    if (!echo_roundtrip(a, "via dup\n", MODE_POLL, -1)) return false;
    int b = dup2(a, 100);
    CHECK(b == 100, "dup2");
    close(a);
    if (!echo_roundtrip(b, "via dup2\n", MODE_POLL, -1)) return false;
    int c = dup3(b, 101, O_CLOEXEC);
    CHECK(c == 101, "dup3");
    close(b);
    if (!echo_roundtrip(c, "via dup3\n", MODE_POLL, -1)) return false;
    if (!peer_is(c, g_host, g_port, AF_INET)) return false;
    close(c);
    return true;
}

static bool case_fork(void) {
    int fd = tcp_socket(AF_INET, false);
    if (!connect_blocking(fd, g_host, g_port, AF_INET)) return false;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        const char* msg = "written by the child\n";
        _exit(write(fd, msg, strlen(msg)) == (ssize_t)strlen(msg) ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child");
    char buf[64];
    size_t got = 0;
    const size_t want = strlen("written by the child\n");
    while (got < want) {
        struct pollfd p = {fd, POLLIN, 0};
        CHECK(poll(&p, 1, WAIT_MS) == 1, "readable");
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        CHECK(n > 0, "read");
        got += (size_t)n;
    }
    CHECK(memcmp(buf, "written by the child\n", want) == 0, "echo of the child's bytes");
    close(fd);
    return true;
}

static bool case_exec(void) {
    int fd = tcp_socket(AF_INET, false);  // no CLOEXEC wanted here
    if (!connect_blocking(fd, g_host, g_port, AF_INET)) return false;
    int flags = fcntl(fd, F_GETFD);
    fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        char fd_text[16], port_text[16];
        snprintf(fd_text, sizeof fd_text, "%d", fd);
        snprintf(port_text, sizeof port_text, "%u", (unsigned)g_port);
        execl(g_self, g_self, "exec-child", g_host, port_text, fd_text, (char*)NULL);
        _exit(127);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exec'd child status %d",
          status);
    if (!echo_roundtrip(fd, "parent after the exec\n", MODE_POLL, -1)) return false;
    close(fd);
    return true;
}

/* In a new process image: the inherited fd works, and the stateless shim still knows its destination. */
static bool case_exec_child(int fd) {
    if (!peer_is(fd, g_host, g_port, AF_INET)) return false;
    int error = -1;
    socklen_t elen = sizeof error;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &elen) == 0 && error == 0, "SO_ERROR");
    return echo_roundtrip(fd, "from the exec'd image\n", MODE_POLL, -1);
}

static bool case_fdopen(void) {
    int fd = tcp_socket(AF_INET, false);
    if (!connect_blocking(fd, g_host, g_port, AF_INET)) return false;
    FILE* f = fdopen(fd, "r+");
    CHECK(f != NULL, "fdopen");
    CHECK(fprintf(f, "stdio line %d\n", 42) > 0 && fflush(f) == 0, "fprintf");
    char line[128];
    CHECK(fgets(line, sizeof line, f) != NULL, "fgets");
    CHECK(strcmp(line, "stdio line 42\n") == 0, "got '%s'", line);
    fseek(f, 0, SEEK_CUR);  // switch direction on a read/write stream
    CHECK(fputs("second\n", f) >= 0 && fflush(f) == 0, "fputs");
    CHECK(fgets(line, sizeof line, f) != NULL && strcmp(line, "second\n") == 0, "second line");
    CHECK(fclose(f) == 0, "fclose");
    return true;
}

static int thread_ok[64];
static void* thread_main(void* arg) {
    int i = (int)(intptr_t)arg;
    int fd = tcp_socket(AF_INET, false);
    struct sockaddr_storage sa;
    socklen_t len = make_address(g_host, g_port, AF_INET, &sa);
    if (fd >= 0 && connect(fd, (struct sockaddr*)&sa, len) == 0) {
        char msg[64];
        snprintf(msg, sizeof msg, "thread %d\n", i);
        thread_ok[i] = echo_roundtrip(fd, msg, MODE_POLL, -1) ? 1 : 0;
    } else {
        fprintf(stderr, "thread %d: connect: %s\n", i, strerror(errno));
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static bool case_threads(int count) {
    pthread_t threads[64];
    CHECK(count > 0 && count <= 64, "count");
    for (int i = 0; i < count; ++i) pthread_create(&threads[i], NULL, thread_main, (void*)(intptr_t)i);
    int ok = 0;
    for (int i = 0; i < count; ++i) {
        pthread_join(threads[i], NULL);
        ok += thread_ok[i];
    }
    printf("threads ok: %d of %d\n", ok, count);
    CHECK(ok == count, "%d of %d threads", ok, count);
    return true;
}

static bool case_closefrom(void) {
    int fd = tcp_socket(AF_INET, false);
    if (!connect_blocking(fd, g_host, g_port, AF_INET)) return false;
    if (!echo_roundtrip(fd, "before the storm\n", MODE_POLL, -1)) return false;
    for (int i = 0; i < 50; ++i) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        (void)s;
    }
    closefrom(3);  // closes fd too, and anything the shim might have held
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF, "closefrom closed the socket");
    int again = tcp_socket(AF_INET, false);
    if (!connect_blocking(again, g_host, g_port, AF_INET)) return false;
    if (!echo_roundtrip(again, "after the storm\n", MODE_POLL, -1)) return false;
    close(again);
    return true;
}

static bool case_getpeername(void) {
    int fd = tcp_socket(AF_INET, false);
    if (!connect_blocking(fd, g_host, g_port, AF_INET)) return false;
    if (!peer_is(fd, g_host, g_port, AF_INET)) return false;
    /* Truncation: the kernel's rules, *len is the full size. */
    unsigned char small[4];
    memset(small, 0xAA, sizeof small);
    socklen_t len = sizeof small;
    CHECK(getpeername(fd, (struct sockaddr*)small, &len) == 0, "getpeername truncated");
    CHECK(len == sizeof(struct sockaddr_in), "full length reported: %u", (unsigned)len);
    uint16_t port;
    memcpy(&port, small + 2, 2);
    CHECK(ntohs(port) == g_port, "truncated copy has the real port %u", (unsigned)ntohs(port));
    CHECK(echo_roundtrip(fd, "v4\n", MODE_POLL, -1), "echo");
    close(fd);
    /* An AF_INET6 socket to the v4-mapped destination reports it v4-mapped. */
    int fd6 = tcp_socket(AF_INET6, false);
    CHECK(fd6 >= 0, "AF_INET6 socket");
    if (!connect_blocking(fd6, g_host, g_port, AF_INET6)) return false;
    if (!peer_is(fd6, g_host, g_port, AF_INET6)) return false;
    CHECK(echo_roundtrip(fd6, "v6 socket\n", MODE_POLL, -1), "echo");
    close(fd6);
    return true;
}

static bool case_syscall_connect(void) {
    int fd = tcp_socket(AF_INET, false);
    struct sockaddr_storage sa;
    socklen_t len = make_address(g_host, g_port, AF_INET, &sa);
    CHECK(syscall(SYS_connect, fd, (struct sockaddr*)&sa, len) == 0, "syscall(SYS_connect)");
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    CHECK(syscall(SYS_getpeername, fd, (struct sockaddr*)&peer, &plen) == 0, "syscall(SYS_getpeername)");
    CHECK(peer.sin_addr.s_addr == ((struct sockaddr_in*)&sa)->sin_addr.s_addr && ntohs(peer.sin_port) == g_port,
          "peer through syscall()");
    if (!echo_roundtrip(fd, "raw syscall\n", MODE_POLL, -1)) return false;
    close(fd);
    return true;
}

/* shutdown(SHUT_WR) reaches slmd (the hook) and the kernel: later writes fail with EPIPE, while the read side
 * stays open and what was sent before arrives back. (SLM cannot half-close a modem socket, so whether the
 * server sees EOF is slmd's policy and not asserted here.) */
static bool case_shutdown(void) {
    int fd = tcp_socket(AF_INET, false);
    if (!connect_blocking(fd, g_host, g_port, AF_INET)) return false;
    if (!echo_roundtrip(fd, "before shutdown\n", MODE_POLL, -1)) return false;
    const char* last = "sent just before shutdown\n";
    CHECK(write(fd, last, strlen(last)) == (ssize_t)strlen(last), "write");
    CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown(SHUT_WR)");
    CHECK(send(fd, "x", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE, "write after SHUT_WR");
    char buf[64];
    size_t got = 0;
    while (got < strlen(last)) {
        struct pollfd p = {fd, POLLIN, 0};
        CHECK(poll(&p, 1, WAIT_MS) == 1, "readable");
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        CHECK(n > 0, "read side still open");
        got += (size_t)n;
    }
    CHECK(memcmp(buf, last, got) == 0, "echo of the bytes sent before shutdown");
    CHECK(close(fd) == 0, "close");
    return true;
}

/* DNS through slmd: HOST is a name slmsim knows (--hosts), ARG its address. */
static bool case_dns(const char* name, const char* address) {
    struct addrinfo* res = NULL;
    CHECK(getaddrinfo(name, NULL, NULL, &res) == 0 && res != NULL, "getaddrinfo(hints NULL)");
    char text[64];
    bool found = false;
    for (struct addrinfo* ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in*)ai->ai_addr)->sin_addr, text, sizeof text);
            found = found || strcmp(text, address) == 0;
        }
    }
    freeaddrinfo(res);
    CHECK(found, "%s resolved to %s", name, address);

    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG | AI_CANONNAME};
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%u", (unsigned)g_port);
    res = NULL;
    CHECK(getaddrinfo(name, port_text, &hints, &res) == 0 && res != NULL, "getaddrinfo(AF_INET, AI_ADDRCONFIG)");
    CHECK(res->ai_socktype == SOCK_STREAM && res->ai_next == NULL, "one stream result (duplicates removed)");
    CHECK(ntohs(((struct sockaddr_in*)res->ai_addr)->sin_port) == g_port, "port from the service");
    CHECK(res->ai_canonname != NULL && strcmp(res->ai_canonname, name) == 0, "canonname");
    int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    CHECK(connect(fd, res->ai_addr, res->ai_addrlen) == 0, "connect to the resolved address");
    freeaddrinfo(res);
    if (!echo_roundtrip(fd, "resolved by the modem\n", MODE_POLL, -1)) return false;
    char host[NI_MAXHOST];
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    CHECK(getpeername(fd, (struct sockaddr*)&peer, &plen) == 0, "getpeername");
    CHECK(getnameinfo((struct sockaddr*)&peer, plen, host, sizeof host, NULL, 0, 0) == 0 && strcmp(host, address) == 0,
          "getnameinfo gives the numeric destination, got %s", host);
    CHECK(getnameinfo((struct sockaddr*)&peer, plen, host, sizeof host, NULL, 0, NI_NAMEREQD) == EAI_NONAME,
          "NI_NAMEREQD");
    close(fd);

    struct addrinfo hints6 = {.ai_family = AF_INET6, .ai_flags = AI_V4MAPPED};
    res = NULL;
    CHECK(getaddrinfo(name, "80", &hints6, &res) == 0 && res != NULL && res->ai_family == AF_INET6,
          "AF_INET6 + AI_V4MAPPED");
    inet_ntop(AF_INET6, &((struct sockaddr_in6*)res->ai_addr)->sin6_addr, text, sizeof text);
    char mapped[64];
    snprintf(mapped, sizeof mapped, "::ffff:%s", address);
    CHECK(strcmp(text, mapped) == 0, "mapped %s", text);
    freeaddrinfo(res);

    struct hostent* he = gethostbyname(name);
    CHECK(he != NULL && he->h_addrtype == AF_INET && he->h_length == 4 && he->h_addr_list[0] != NULL, "gethostbyname");
    inet_ntop(AF_INET, he->h_addr_list[0], text, sizeof text);
    CHECK(strcmp(text, address) == 0 && he->h_addr_list[1] == NULL, "gethostbyname address %s", text);
    he = gethostbyname2(name, AF_INET);
    CHECK(he != NULL && he->h_addrtype == AF_INET, "gethostbyname2");

    struct hostent ret, *result = NULL;
    char buf[1024];
    int herr = 0;
    CHECK(gethostbyname_r(name, &ret, buf, sizeof buf, &result, &herr) == 0 && result == &ret, "gethostbyname_r");
    inet_ntop(AF_INET, ret.h_addr_list[0], text, sizeof text);
    CHECK(strcmp(text, address) == 0 && strcmp(ret.h_name, name) == 0, "gethostbyname_r address");
    CHECK(gethostbyname_r(name, &ret, buf, 8, &result, &herr) == ERANGE && result == NULL, "ERANGE for a tiny buffer");
    CHECK(gethostbyname2_r(name, AF_INET, &ret, buf, sizeof buf, &result, &herr) == 0 && result != NULL,
          "gethostbyname2_r");

    res = NULL;
    CHECK(getaddrinfo("no-such-name.example", "80", NULL, &res) == EAI_NONAME, "unknown name");
    CHECK(gethostbyname("no-such-name.example") == NULL && h_errno == HOST_NOT_FOUND, "gethostbyname unknown");
    CHECK(gethostbyname_r("no-such-name.example", &ret, buf, sizeof buf, &result, &herr) == 0 && result == NULL &&
              herr == HOST_NOT_FOUND,
          "gethostbyname_r unknown");
    return true;
}

/* ---- UDP and servers ------------------------------------------------------------------------------------ */

/* "a.b.c.d:p" / "[v6]:p" of an address, for messages and for the runner to compare. */
static const char* address_text(const struct sockaddr_storage* ss, socklen_t len, char* buf, size_t size) {
    char text[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in* in = (const struct sockaddr_in*)ss;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        snprintf(buf, size, "%s:%u", text, (unsigned)ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        snprintf(buf, size, "[%s]:%u", text, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, size, "(family %d, length %u)", ss->ss_family, (unsigned)len);
    }
    return buf;
}

static bool same_address(const struct sockaddr_storage* a, socklen_t alen, const struct sockaddr_storage* b,
                         socklen_t blen) {
    char x[80], y[80];
    return alen == blen && strcmp(address_text(a, alen, x, sizeof x), address_text(b, blen, y, sizeof y)) == 0;
}

/* Every byte value, CR/LF and pluses included, but never "+++": a binary (unquotable) datagram has to cross
 * in one data-mode flush, and SLM v2.5+ ends data mode at a "+++" anywhere, so the firmware cannot send such
 * a datagram at all (slmd drops it and counts it; docs/data-path.md). Text datagrams with "+++" go quoted. */
static void fill_payload(unsigned char* p, size_t n, unsigned seed) {
    uint32_t x = 2463534242u ^ seed;
    for (size_t i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
        if (i >= 2 && p[i] == '+' && p[i - 1] == '+' && p[i - 2] == '+') p[i] = '-';
    }
    if (n >= 2) memcpy(p + n / 2 - (n >= 4 ? 1 : 0), "++", 2);
    if (n >= 4 && p[n / 2 + 1] == '+') p[n / 2 + 1] = '-';
    if (n >= 4 && p[n / 2 - 2] == '+') p[n / 2 - 2] = '-';
}

static bool wait_readable(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, WAIT_MS) == 1;
}

/* One datagram each way through HOST:PORT (an echo) for every size in ARG ("1,1024,2048"): unconnected
 * sendto/recvfrom, then sendmsg/recvmsg, then connect + send/recv. The source recvfrom/recvmsg report and
 * getpeername must be HOST:PORT itself, in the socket's family (v4-mapped for an AF_INET6 socket). */
static bool case_udp_client(int family, const char* sizes) {
    struct sockaddr_storage server;
    socklen_t server_len = make_address(g_host, g_port, family, &server);
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket");
    static unsigned char out[65536], in[65536];
    char text[80], want[80];
    address_text(&server, server_len, want, sizeof want);
    unsigned seed = 1;
    /* Unconnected (sendto, sendmsg) for every size, then connected for every size: one socket, one port, so
     * slmd's one UDP client stays pointed at one peer throughout. */
    for (int mode = 0; mode < 3; ++mode) {
    if (mode == 2) {
        CHECK(connect(fd, (struct sockaddr*)&server, server_len) == 0, "UDP connect");
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        CHECK(getpeername(fd, (struct sockaddr*)&peer, &peer_len) == 0, "getpeername");
        CHECK(same_address(&peer, peer_len, &server, server_len), "getpeername %s, want %s",
              address_text(&peer, peer_len, text, sizeof text), want);
    }
    for (const char* p = sizes; *p != '\0';) {
        size_t n = strtoul(p, (char**)&p, 10);
        if (*p == ',') ++p;
        CHECK(n > 0 && n <= sizeof out, "size %zu", n);
        {
            fill_payload(out, n, seed++);
            struct sockaddr_storage from;
            socklen_t from_len = sizeof from;
            ssize_t got;
            if (mode == 0) {
                CHECK(sendto(fd, out, n, 0, (struct sockaddr*)&server, server_len) == (ssize_t)n, "sendto %zu", n);
                CHECK(wait_readable(fd), "echo of %zu bytes (sendto)", n);
                got = recvfrom(fd, in, sizeof in, 0, (struct sockaddr*)&from, &from_len);
            } else if (mode == 1) {
                struct iovec iov = {out, n};
                struct msghdr m = {.msg_name = &server, .msg_namelen = server_len, .msg_iov = &iov, .msg_iovlen = 1};
                CHECK(sendmsg(fd, &m, 0) == (ssize_t)n, "sendmsg %zu", n);
                CHECK(wait_readable(fd), "echo of %zu bytes (sendmsg)", n);
                struct iovec riov = {in, sizeof in};
                struct msghdr r = {.msg_name = &from, .msg_namelen = from_len, .msg_iov = &riov, .msg_iovlen = 1};
                got = recvmsg(fd, &r, 0);
                from_len = r.msg_namelen;
            } else {
                CHECK(send(fd, out, n, 0) == (ssize_t)n, "send %zu", n);
                CHECK(wait_readable(fd), "echo of %zu bytes (connected)", n);
                got = recvfrom(fd, in, sizeof in, 0, (struct sockaddr*)&from, &from_len);
            }
            CHECK(got == (ssize_t)n && memcmp(in, out, n) == 0, "echo of %zu bytes came back as %zd", n, got);
            CHECK(same_address(&from, from_len, &server, server_len), "source %s, want %s",
                  address_text(&from, from_len, text, sizeof text), want);
        }
        if (mode == 2) printf("udp %zu bytes: ok from %s\n", n, address_text(&server, server_len, text, sizeof text));
    }
    }
    close(fd);
    return true;
}

/* getsockname() of a modem server: the socket's family, port PORT, and an address that is not the loopback
 * plumbing (slmd reports the wildcard or the modem's own address; BIND does not carry which one was asked). */
static bool modem_side(const struct sockaddr_storage* ss, socklen_t len, int family) {
    if (ss->ss_family != family) return false;
    if (family == AF_INET) {
        const struct sockaddr_in* in = (const struct sockaddr_in*)ss;
        return len == sizeof *in && ntohs(in->sin_port) == g_port && (ntohl(in->sin_addr.s_addr) >> 24) != 127;
    }
    const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)ss;
    return len == sizeof *in6 && ntohs(in6->sin6_port) == g_port && !IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

/* A UDP server on the wildcard address, port PORT: getsockname says so; each of COUNT datagrams is answered to
 * its source (printed "from ADDRESS"), with the bytes reversed. */
static bool case_udp_server(int family, int count) {
    struct sockaddr_storage any;
    socklen_t any_len = make_address(family == AF_INET6 ? "::" : "0.0.0.0", g_port, family, &any);
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(bind(fd, (struct sockaddr*)&any, any_len) == 0, "bind");
    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    char text[80], want[80];
    CHECK(getsockname(fd, (struct sockaddr*)&local, &local_len) == 0 && modem_side(&local, local_len, family),
          "getsockname %s, want the wildcard or the modem's address, port %u",
          address_text(&local, local_len, text, sizeof text), (unsigned)g_port);
    (void)want;
    printf("sockname %s\n", text);
    printf("udp server ready\n");
    for (int i = 0; i < count; ++i) {
        CHECK(wait_readable(fd), "datagram %d", i);
        static unsigned char buf[65536];
        struct sockaddr_storage from;
        socklen_t from_len = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr*)&from, &from_len);
        CHECK(n >= 0, "recvfrom");
        printf("from %s (%zd bytes)\n", address_text(&from, from_len, text, sizeof text), n);
        for (ssize_t a = 0, b = n - 1; a < b; ++a, --b) {
            unsigned char t = buf[a];
            buf[a] = buf[b];
            buf[b] = t;
        }
        CHECK(sendto(fd, buf, (size_t)n, 0, (struct sockaddr*)&from, from_len) == n, "reply to %s", text);
    }
    close(fd);
    return true;
}

/* A TCP server on the wildcard address, port PORT, for COUNT connections one after the other: accept reports the
 * modem's peer (printed "peer ADDRESS"), getpeername agrees, getsockname shows the wildcard and PORT; each
 * connection is echoed until the peer closes, or (ARG "hangup") closed by us after the first echo. */
static bool case_tcp_server(int family, int count, bool hang_up) {
    struct sockaddr_storage any;
    socklen_t any_len = make_address(family == AF_INET6 ? "::" : "0.0.0.0", g_port, family, &any);
    int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    CHECK(bind(l, (struct sockaddr*)&any, any_len) == 0, "bind");
    CHECK(listen(l, 4) == 0, "listen");
    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    char text[80], want[80];
    CHECK(getsockname(l, (struct sockaddr*)&local, &local_len) == 0 && modem_side(&local, local_len, family),
          "getsockname %s, want the wildcard or the modem's address, port %u",
          address_text(&local, local_len, text, sizeof text), (unsigned)g_port);
    printf("sockname %s\n", text);
    printf("tcp server ready\n");
    for (int i = 0; i < count; ++i) {
        CHECK(wait_readable(l), "connection %d", i);
        struct sockaddr_storage peer, again;
        socklen_t peer_len = sizeof peer, again_len = sizeof again;
        int c = accept4(l, (struct sockaddr*)&peer, &peer_len, SOCK_CLOEXEC);
        CHECK(c >= 0, "accept");
        printf("peer %s\n", address_text(&peer, peer_len, text, sizeof text));
        CHECK(getpeername(c, (struct sockaddr*)&again, &again_len) == 0 && same_address(&peer, peer_len, &again, again_len),
              "getpeername %s", address_text(&again, again_len, want, sizeof want));
        /* A short buffer gets the kernel's truncation: the length says how much there was. */
        struct sockaddr_in tiny;
        socklen_t tiny_len = 4;
        CHECK(getpeername(c, (struct sockaddr*)&tiny, &tiny_len) == 0 && tiny_len == peer_len, "truncated getpeername");
        char buf[4096];
        for (;;) {
            CHECK(wait_readable(c), "data on connection %d", i);
            ssize_t n = read(c, buf, sizeof buf);
            if (n == 0) break;
            if (n < 0 && errno == ECONNRESET) break;
            CHECK(n > 0, "read");
            CHECK(write(c, buf, (size_t)n) == n, "echo");
            if (hang_up) break;
        }
        printf("connection %d done\n", i);
        close(c);
    }
    close(l);
    return true;
}

/* Binding without slmd, or refused by it. ARG: a free port. The wildcard falls back to the kernel (the socket
 * is replaced, its options and flags kept); the modem's own address (from slmd) or a refused one fails. */
static bool case_bind_fallback(int expected_modem_bind_errno) {
    struct sockaddr_storage any;
    socklen_t any_len = make_address("0.0.0.0", g_port, AF_INET, &any);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0, "SO_REUSEADDR");
    CHECK(bind(fd, (struct sockaddr*)&any, any_len) == 0, "wildcard bind falls back to the kernel");
    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    char text[80];
    CHECK(getsockname(fd, (struct sockaddr*)&local, &local_len) == 0 && same_address(&local, local_len, &any, any_len),
          "kernel-bound at %s", address_text(&local, local_len, text, sizeof text));
    int value = 0;
    socklen_t vlen = sizeof value;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &value, &vlen) == 0 && value == 1, "SO_REUSEADDR kept");
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "O_NONBLOCK kept");
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "FD_CLOEXEC kept");
    CHECK(listen(fd, 2) == 0, "listen");
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage lo;
    socklen_t lo_len = make_address("127.0.0.1", g_port, AF_INET, &lo);
    CHECK(connect(c, (struct sockaddr*)&lo, lo_len) == 0, "a local client reaches the kernel-bound server");
    close(c);
    close(fd);
    /* A dual-stack server (IPV6_V6ONLY=0, as Python's create_server(dualstack_ipv6=True) sets it) stays dual-stack:
     * the shim's own loopback bind to [::1] turns V6ONLY on, and the replacement socket must not inherit that. */
    struct sockaddr_storage any6;
    socklen_t any6_len = make_address("::", g_port, AF_INET6, &any6);
    fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int zero = 0;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0, "SO_REUSEADDR");
    CHECK(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) == 0, "IPV6_V6ONLY=0");
    CHECK(bind(fd, (struct sockaddr*)&any6, any6_len) == 0, "dual-stack wildcard bind falls back to the kernel");
    value = -1;
    vlen = sizeof value;
    CHECK(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, &vlen) == 0 && value == 0, "IPV6_V6ONLY=0 kept: %d",
          value);
    CHECK(listen(fd, 2) == 0, "listen");
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(connect(c, (struct sockaddr*)&lo, lo_len) == 0, "an IPv4 client reaches the dual-stack server");
    close(c);
    close(fd);
    /* The modem's address: not the kernel's, so the error is the modem's or the kernel's EADDRNOTAVAIL. */
    struct sockaddr_storage modem;
    socklen_t modem_len = make_address("10.0.0.2", g_port, AF_INET, &modem);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(bind(fd, (struct sockaddr*)&modem, modem_len) == -1 && errno == expected_modem_bind_errno,
          "bind to the modem's address: want errno %d", expected_modem_bind_errno);
    local_len = sizeof local;
    CHECK(getsockname(fd, (struct sockaddr*)&local, &local_len) == 0 &&
              ntohs(((struct sockaddr_in*)&local)->sin_port) == 0,
          "still unbound: %s", address_text(&local, local_len, text, sizeof text));
    close(fd);
    /* UDP to a remote peer without slmd: no silent kernel route. */
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage far;
    socklen_t far_len = make_address("203.0.113.10", 7, AF_INET, &far);
    if (expected_modem_bind_errno == EADDRNOTAVAIL) {
        CHECK(sendto(fd, "x", 1, 0, (struct sockaddr*)&far, far_len) == -1 && errno == ENETDOWN, "sendto");
        CHECK(connect(fd, (struct sockaddr*)&far, far_len) == -1 && errno == ENETDOWN, "UDP connect");
    }
    close(fd);
    return true;
}

/* ---- Cases without slmd --------------------------------------------------------------------------------- */

/* A loopback listener of our own: loopback always goes to the kernel. */
static bool case_loopback(void) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(l, (struct sockaddr*)&sa, sizeof sa) == 0 && listen(l, 4) == 0, "listen");
    socklen_t len = sizeof sa;
    getsockname(l, (struct sockaddr*)&sa, &len);
    int fd = tcp_socket(AF_INET, false);
    CHECK(connect(fd, (struct sockaddr*)&sa, sizeof sa) == 0, "loopback connect");
    if (!peer_is(fd, "127.0.0.1", ntohs(sa.sin_port), AF_INET)) return false;
    int error = -1;
    socklen_t elen = sizeof error;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &elen) == 0 && error == 0, "SO_ERROR");
    CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
    close(fd);
    int fd6 = tcp_socket(AF_INET6, false);
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6, .sin6_port = sa.sin_port};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr);
    CHECK(connect(fd6, (struct sockaddr*)&mapped, sizeof mapped) == 0, "v4-mapped loopback connect");
    close(fd6);
    close(l);
    return true;
}

/* slmd absent (SLMSOCK_SOCKET points nowhere): fast ENETDOWN, no hang, for every way in. */
static bool case_absent(void) {
    int64_t start = now_ms();
    int fd = tcp_socket(AF_INET, false);
    struct sockaddr_storage sa;
    socklen_t len = make_address("203.0.113.10", 80, AF_INET, &sa);
    CHECK(connect(fd, (struct sockaddr*)&sa, len) == -1 && errno == ENETDOWN, "blocking connect");
    close(fd);
    fd = tcp_socket(AF_INET, true);
    CHECK(connect(fd, (struct sockaddr*)&sa, len) == -1 && errno == ENETDOWN, "non-blocking connect");
    close(fd);
    fd = tcp_socket(AF_INET6, false);
    socklen_t len6 = make_address("2001:db8::1", 80, AF_INET6, &sa);
    CHECK(connect(fd, (struct sockaddr*)&sa, len6) == -1 && errno == ENETDOWN, "IPv6 connect");
    close(fd);
    fd = tcp_socket(AF_INET, false);
    len = make_address("203.0.113.10", 80, AF_INET, &sa);
    CHECK(sendto(fd, "x", 1, MSG_FASTOPEN, (struct sockaddr*)&sa, len) == -1 && errno == ENETDOWN,
          "TCP Fast Open sendto goes through the hook");
    close(fd);
    struct addrinfo* res = NULL;
    CHECK(getaddrinfo("files.example", "80", NULL, &res) == EAI_AGAIN, "getaddrinfo");
    CHECK(gethostbyname("files.example") == NULL && h_errno == TRY_AGAIN, "gethostbyname");
    int64_t elapsed = now_ms() - start;
    printf("all failed in %lld ms\n", (long long)elapsed);
    CHECK(elapsed < 2000, "fast: %lld ms", (long long)elapsed);
    return true;
}

static bool case_strict(void) {
    struct sockaddr_storage sa;
    socklen_t len = make_address("203.0.113.10", 53, AF_INET, &sa);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    /* UDP goes through slmd now: without it, ENETDOWN (never the kernel's route). */
    CHECK(connect(u, (struct sockaddr*)&sa, len) == -1 && errno == ENETDOWN, "UDP connect without slmd");
    CHECK(sendto(u, "q", 1, 0, (struct sockaddr*)&sa, len) == -1 && errno == ENETDOWN, "UDP sendto without slmd");
    struct msghdr msg = {0};
    struct iovec iov = {(void*)"q", 1};
    msg.msg_name = &sa;
    msg.msg_namelen = len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    CHECK(sendmsg(u, &msg, 0) == -1 && errno == ENETDOWN, "UDP sendmsg without slmd");
    /* What still cannot go through the modem is refused in strict mode: a raw socket (root only). */
    int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (raw >= 0) {
        CHECK(connect(raw, (struct sockaddr*)&sa, len) == -1 && errno == ENETUNREACH, "raw connect refused");
        CHECK(sendto(raw, "q", 1, 0, (struct sockaddr*)&sa, len) == -1 && errno == ENETUNREACH, "raw sendto refused");
        close(raw);
    }
    /* Loopback stays allowed. */
    int r = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(r, (struct sockaddr*)&lo, sizeof lo) == 0, "bind");
    socklen_t lolen = sizeof lo;
    getsockname(r, (struct sockaddr*)&lo, &lolen);
    CHECK(sendto(u, "ok", 2, 0, (struct sockaddr*)&lo, sizeof lo) == 2, "UDP to loopback");
    char buf[4];
    struct pollfd p = {r, POLLIN, 0};
    CHECK(poll(&p, 1, WAIT_MS) == 1 && recv(r, buf, sizeof buf, 0) == 2, "loopback datagram arrives");
    close(u);
    close(r);
    return case_loopback();
}

static bool case_syscall_passthrough(void) {
    CHECK(syscall(SYS_getpid) == getpid(), "SYS_getpid");
    CHECK(syscall(SYS_gettid) == gettid(), "SYS_gettid");
    errno = 0;
    CHECK(syscall(987654) == -1 && errno == ENOSYS, "an unknown number reaches the kernel");
    int fds[2];
    CHECK(syscall(SYS_pipe2, fds, O_CLOEXEC) == 0, "SYS_pipe2");
    CHECK(syscall(SYS_write, fds[1], "abc", 3) == 3, "SYS_write");
    char buf[3];
    CHECK(syscall(SYS_read, fds[0], buf, 3) == 3 && memcmp(buf, "abc", 3) == 0, "SYS_read");
    long sixth = syscall(SYS_mmap, NULL, 4096, 3 /*PROT_READ|PROT_WRITE*/, 0x22 /*MAP_PRIVATE|MAP_ANONYMOUS*/, -1, 0);
    CHECK(sixth != -1, "SYS_mmap with six arguments");
    CHECK(syscall(SYS_munmap, sixth, 4096) == 0, "SYS_munmap");
    /* Socket numbers go through the hooks: with slmd absent, a modem connect is ENETDOWN, not the kernel's
     * ENETUNREACH. */
    int fd = tcp_socket(AF_INET, false);
    struct sockaddr_storage sa;
    socklen_t len = make_address("203.0.113.10", 80, AF_INET, &sa);
    CHECK(syscall(SYS_connect, fd, &sa, len) == -1 && errno == ENETDOWN, "SYS_connect is hooked");
    close(fd);
    close(fds[0]);
    close(fds[1]);
    return true;
}

/* Names the C library answers: no slmd needed. ARG names a host listed in /etc/hosts. */
static bool case_dns_local(const char* listed) {
    struct addrinfo* res = NULL;
    CHECK(getaddrinfo("localhost", "80", NULL, &res) == 0, "localhost");
    freeaddrinfo(res);
    res = NULL;
    CHECK(getaddrinfo("10.1.2.3", "80", NULL, &res) == 0, "numeric");
    freeaddrinfo(res);
    res = NULL;
    CHECK(getaddrinfo(listed, "80", NULL, &res) == 0, "a name from the hosts file");
    freeaddrinfo(res);
    CHECK(gethostbyname(listed) != NULL, "gethostbyname of a hosts-file name");
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char host[NI_MAXHOST];
    CHECK(getnameinfo((struct sockaddr*)&lo, sizeof lo, host, sizeof host, NULL, 0, NI_NAMEREQD) == 0,
          "loopback reverse lookup is the C library's");
    struct sockaddr_in far = {.sin_family = AF_INET};
    inet_pton(AF_INET, "203.0.113.10", &far.sin_addr);
    CHECK(getnameinfo((struct sockaddr*)&far, sizeof far, host, sizeof host, NULL, 0, 0) == 0 &&
              strcmp(host, "203.0.113.10") == 0,
          "numeric for a modem address");
    CHECK(getnameinfo((struct sockaddr*)&far, sizeof far, host, sizeof host, NULL, 0, NI_NAMEREQD) == EAI_NONAME,
          "NI_NAMEREQD");
    CHECK(gethostbyaddr(&far.sin_addr, 4, AF_INET) == NULL && h_errno == HOST_NOT_FOUND, "gethostbyaddr");
    return true;
}

/* Without the shim this prints the kernel's view: the runner uses it to prove the namespace has no route. */
static bool case_kernel_connect(int expected) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage sa;
    socklen_t len = make_address("203.0.113.10", 80, AF_INET, &sa);
    CHECK(connect(fd, (struct sockaddr*)&sa, len) == -1 && errno == expected, "kernel connect");
    close(fd);
    return true;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    g_self = argv[0];
    if (argc < 2) {
        fprintf(stderr, "usage: preload_matrix CASE [HOST PORT [ARG]]\n");
        return 2;
    }
    const char* name = argv[1];
    if (argc >= 4) {
        g_host = argv[2];
        g_port = (uint16_t)atoi(argv[3]);
    }
    const char* arg = argc >= 5 ? argv[4] : "";
    bool ok = false;
    if (strcmp(name, "echo-blocking") == 0) ok = case_echo(arg, false);
    else if (strcmp(name, "echo-nonblocking") == 0) ok = case_echo(arg, true);
    else if (strcmp(name, "epoll-before-connect") == 0) ok = case_epoll_before_connect();
    else if (strcmp(name, "error-blocking") == 0) ok = expect_connect_error(atoi(arg), false);
    else if (strcmp(name, "error-nonblocking") == 0) ok = expect_connect_error(atoi(arg), true);
    else if (strcmp(name, "dup") == 0) ok = case_dup();
    else if (strcmp(name, "fork") == 0) ok = case_fork();
    else if (strcmp(name, "exec") == 0) ok = case_exec();
    else if (strcmp(name, "exec-child") == 0) ok = case_exec_child(atoi(arg));
    else if (strcmp(name, "fdopen") == 0) ok = case_fdopen();
    else if (strcmp(name, "threads") == 0) ok = case_threads(atoi(arg));
    else if (strcmp(name, "closefrom") == 0) ok = case_closefrom();
    else if (strcmp(name, "getpeername") == 0) ok = case_getpeername();
    else if (strcmp(name, "syscall-connect") == 0) ok = case_syscall_connect();
    else if (strcmp(name, "shutdown") == 0) ok = case_shutdown();
    else if (strcmp(name, "dns") == 0) ok = case_dns(g_host, arg);
    else if (strcmp(name, "udp-client") == 0) ok = case_udp_client(AF_INET, arg);
    else if (strcmp(name, "udp-client6") == 0) ok = case_udp_client(AF_INET6, arg);
    else if (strcmp(name, "udp-server") == 0) ok = case_udp_server(AF_INET, atoi(arg));
    else if (strcmp(name, "udp-server6") == 0) ok = case_udp_server(AF_INET6, atoi(arg));
    else if (strcmp(name, "tcp-server") == 0) ok = case_tcp_server(AF_INET, atoi(arg), argc >= 6 && strcmp(argv[5], "hangup") == 0);
    else if (strcmp(name, "tcp-server6") == 0) ok = case_tcp_server(AF_INET6, atoi(arg), argc >= 6 && strcmp(argv[5], "hangup") == 0);
    else if (strcmp(name, "bind-fallback") == 0) ok = case_bind_fallback(atoi(arg));
    else if (strcmp(name, "loopback") == 0) ok = case_loopback();
    else if (strcmp(name, "absent") == 0) ok = case_absent();
    else if (strcmp(name, "strict") == 0) ok = case_strict();
    else if (strcmp(name, "syscall-passthrough") == 0) ok = case_syscall_passthrough();
    else if (strcmp(name, "dns-local") == 0) ok = case_dns_local(argc >= 3 ? argv[2] : "");
    else if (strcmp(name, "kernel-connect") == 0) ok = case_kernel_connect(atoi(argc >= 3 ? argv[2] : "0"));
    else {
        fprintf(stderr, "unknown case %s\n", name);
        return 2;
    }
    if (ok && failures == 0) {
        printf("ok %s\n", name);
        return 0;
    }
    return 1;
}
