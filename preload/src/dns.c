/* dns.c — name lookups through slmd (the modem's DNS) instead of the kernel's resolver.
 *
 * Rule: IP literals, "localhost" (and *.localhost) and every name listed in /etc/hosts are the C library's
 * (which answers them from /etc/hosts without the network); every other name is resolved by slmd.
 * getaddrinfo() results are built by the real getaddrinfo() on each numeric answer (AI_NUMERICHOST), so
 * libc allocates them, the service/socktype/protocol handling is libc's, and freeaddrinfo() needs no hook. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* struct mmsghdr in shim_internal.h */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy.h"
#include "shim_internal.h"
#include "slmsock.h"

#define MAX_ANSWERS 16
#define HOSTS_FILE_LIMIT (1 << 20)

static bool hosts_file_lists(const char* name) {
    int fd = open("/etc/hosts", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t capacity = 16384;
    size_t len = 0;
    char* text = malloc(capacity);
    bool listed = false;
    while (text != NULL) {
        if (len == capacity) {
            if (capacity >= HOSTS_FILE_LIMIT) break;
            char* bigger = realloc(text, capacity * 2);
            if (bigger == NULL) break;
            text = bigger;
            capacity *= 2;
        }
        ssize_t n = read(fd, text + len, capacity - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    if (text != NULL) listed = slmsock_pl_hosts_text_lists(text, len, name);
    free(text);
    close(fd);
    return listed;
}

/* True when the C library answers for `name` (no lookup leaves the host, or the hosts file has it). */
static bool libc_answers(const char* name) {
    return slmsock_pl_is_numeric_host(name) || slmsock_pl_is_localhost_name(name) || hosts_file_lists(name);
}

/* Asks slmd. Returns 0 or an EAI_* code; the answers are deduplicated. */
static int resolve(const char* name, int family, struct sockaddr_storage* answers, size_t* count) {
    const int saved = errno;
    *count = 0;
    SHIM_ENTER();
    int rc = slmsock_resolve(name, family, answers, MAX_ANSWERS, count);
    SHIM_LEAVE();
    if (rc != 0) {
        const int library_errno = errno;
        shim_log("resolve %s: slmd: %s", name,
                 rc == EAI_SYSTEM ? strerror(library_errno) : slmsock_resolve_strerror(rc));
        /* EAI_SYSTEM (slmd absent or unusable) becomes EAI_AGAIN, with errno still saying why (ENETDOWN). */
        errno = rc == EAI_SYSTEM ? library_errno : saved;
        return slmsock_pl_resolve_error_to_eai(rc);
    }
    errno = saved;
    if (*count > MAX_ANSWERS) *count = MAX_ANSWERS;
    *count = slmsock_pl_dedupe(answers, *count);
    shim_log("resolve %s: slmd: %zu address(es)", name, *count);
    return *count == 0 ? EAI_NONAME : 0;
}

static void append(struct addrinfo** head, struct addrinfo** tail, struct addrinfo* part) {
    if (part == NULL) return;
    if (*head == NULL) {
        *head = part;
    } else {
        (*tail)->ai_next = part;
    }
    struct addrinfo* last = part;
    while (last->ai_next != NULL) last = last->ai_next;
    *tail = last;
}

SHIM_EXPORT int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                            struct addrinfo** result) {
    getaddrinfo_fn real_getaddrinfo = REAL(getaddrinfo);
    if (real_getaddrinfo == NULL) return EAI_SYSTEM;
    if (shim_in_library != 0 || node == NULL || result == NULL) return real_getaddrinfo(node, service, hints, result);
    const int family = hints != NULL ? hints->ai_family : AF_UNSPEC;
    const int flags = hints != NULL ? hints->ai_flags : (AI_V4MAPPED | AI_ADDRCONFIG);
    if ((flags & AI_NUMERICHOST) != 0 || (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) ||
        libc_answers(node)) {
        shim_log("getaddrinfo %s: C library", node);
        return real_getaddrinfo(node, service, hints, result);
    }
    const bool map_v4 = family == AF_INET6 && (flags & AI_V4MAPPED) != 0;
    struct sockaddr_storage answers[MAX_ANSWERS];
    size_t count = 0;
    int rc = resolve(node, map_v4 ? AF_UNSPEC : family, answers, &count);
    if (rc != 0) return rc;

    bool have_v6 = false;
    for (size_t i = 0; i < count; ++i) have_v6 = have_v6 || answers[i].ss_family == AF_INET6;

    struct addrinfo numeric;
    memset(&numeric, 0, sizeof numeric);
    if (hints != NULL) {
        numeric.ai_socktype = hints->ai_socktype;
        numeric.ai_protocol = hints->ai_protocol;
    }
    numeric.ai_flags = AI_NUMERICHOST | (flags & AI_NUMERICSERV);

    struct addrinfo* head = NULL;
    struct addrinfo* tail = NULL;
    int last_error = EAI_NONAME;
    for (size_t i = 0; i < count; ++i) {
        char text[INET6_ADDRSTRLEN];
        const struct sockaddr_storage* a = &answers[i];
        if (a->ss_family == AF_INET) {
            if (family == AF_INET6 && !(map_v4 && (!have_v6 || (flags & AI_ALL) != 0))) continue;
            inet_ntop(AF_INET, &((const struct sockaddr_in*)a)->sin_addr, text + (family == AF_INET6 ? 7 : 0),
                      sizeof text - 7);
            if (family == AF_INET6) memcpy(text, "::ffff:", 7);
            numeric.ai_family = family == AF_INET6 ? AF_INET6 : AF_INET;
        } else if (a->ss_family == AF_INET6) {
            if (family == AF_INET) continue;
            inet_ntop(AF_INET6, &((const struct sockaddr_in6*)a)->sin6_addr, text, sizeof text);
            numeric.ai_family = AF_INET6;
        } else {
            continue;
        }
        struct addrinfo* part = NULL;
        int r = real_getaddrinfo(text, service, &numeric, &part);
        if (r == EAI_SERVICE || r == EAI_SOCKTYPE || r == EAI_BADFLAGS || r == EAI_MEMORY) {
            if (head != NULL) freeaddrinfo(head);
            return r;
        }
        if (r != 0) {
            last_error = r;
            continue;
        }
        append(&head, &tail, part);
    }
    if (head == NULL) return last_error == EAI_NONAME && count > 0 ? EAI_NONAME : last_error;
    if ((flags & AI_CANONNAME) != 0) {
        char* name = strdup(node);
        if (name != NULL) {
            free(head->ai_canonname);  // glibc frees ai_canonname separately in freeaddrinfo()
            head->ai_canonname = name;
        }
    }
    *result = head;
    return 0;
}

/* ---- gethostbyname family ----------------------------------------------------------------------------------- */

/* Lays out a hostent for `name` with the answers of family `af` in buf. Returns 0, ERANGE, or -1 (no address). */
static int build_hostent(const char* name, int af, const struct sockaddr_storage* answers, size_t count,
                         struct hostent* out, char* buf, size_t buflen) {
    const size_t addr_len = af == AF_INET6 ? 16 : 4;
    size_t n = 0;
    for (size_t i = 0; i < count; ++i) n += answers[i].ss_family == af;
    if (n == 0) return -1;
    const size_t name_len = strlen(name) + 1;
    uintptr_t base = (uintptr_t)buf;
    uintptr_t aligned = (base + sizeof(char*) - 1) & ~(uintptr_t)(sizeof(char*) - 1);
    size_t pad = (size_t)(aligned - base);
    size_t need = pad + (n + 1) * sizeof(char*) + sizeof(char*) + n * addr_len + name_len;
    if (buf == NULL || buflen < need) return ERANGE;
    char** addr_list = (char**)(buf + pad);
    char** aliases = addr_list + n + 1;
    char* data = (char*)(aliases + 1);
    size_t k = 0;
    for (size_t i = 0; i < count; ++i) {
        if (answers[i].ss_family != af) continue;
        const void* bytes = af == AF_INET6 ? (const void*)&((const struct sockaddr_in6*)&answers[i])->sin6_addr
                                           : (const void*)&((const struct sockaddr_in*)&answers[i])->sin_addr;
        memcpy(data + k * addr_len, bytes, addr_len);
        addr_list[k] = data + k * addr_len;
        ++k;
    }
    addr_list[n] = NULL;
    aliases[0] = NULL;
    char* name_copy = data + n * addr_len;
    memcpy(name_copy, name, name_len);
    out->h_name = name_copy;
    out->h_aliases = aliases;
    out->h_addrtype = af;
    out->h_length = (int)addr_len;
    out->h_addr_list = addr_list;
    return 0;
}

/* The reentrant lookup through slmd, with glibc's conventions: 0 and *result set; 0 with *result NULL and
 * *h_errnop HOST_NOT_FOUND/NO_DATA; EAGAIN with TRY_AGAIN; ERANGE with NETDB_INTERNAL. */
static int lookup_r(const char* name, int af, struct hostent* ret, char* buf, size_t buflen, struct hostent** result,
                    int* h_errnop) {
    *result = NULL;
    if (af != AF_INET && af != AF_INET6) {
        *h_errnop = NO_RECOVERY;
        errno = EAFNOSUPPORT;
        return EAFNOSUPPORT;
    }
    struct sockaddr_storage answers[MAX_ANSWERS];
    size_t count = 0;
    int rc = resolve(name, af, answers, &count);
    if (rc != 0) {
        *h_errnop = slmsock_pl_eai_to_h_errno(rc);
        return *h_errnop == TRY_AGAIN ? EAGAIN : 0;
    }
    int built = build_hostent(name, af, answers, count, ret, buf, buflen);
    if (built == ERANGE) {
        *h_errnop = NETDB_INTERNAL;
        errno = ERANGE;
        return ERANGE;
    }
    if (built != 0) {
        *h_errnop = NO_DATA;
        return 0;
    }
    *h_errnop = 0;
    *result = ret;
    return 0;
}

static __thread struct hostent static_host __attribute__((tls_model("initial-exec")));
static __thread char static_host_buffer[MAX_ANSWERS * (16 + sizeof(char*)) + 2 * sizeof(char*) + 256 + 16]
    __attribute__((tls_model("initial-exec")));

static struct hostent* lookup_static(const char* name, int af) {
    struct hostent* result = NULL;
    int h = 0;
    lookup_r(name, af, &static_host, static_host_buffer, sizeof static_host_buffer, &result, &h);
    if (result == NULL) h_errno = h;
    return result;
}

SHIM_EXPORT struct hostent* gethostbyname2(const char* name, int af) {
    gethostbyname2_fn real_gethostbyname2 = REAL(gethostbyname2);
    if (real_gethostbyname2 == NULL) {
        h_errno = NO_RECOVERY;
        return NULL;
    }
    if (shim_in_library != 0 || name == NULL || libc_answers(name)) return real_gethostbyname2(name, af);
    return lookup_static(name, af);
}

SHIM_EXPORT struct hostent* gethostbyname(const char* name) {
    gethostbyname_fn real_gethostbyname = REAL(gethostbyname);
    if (real_gethostbyname == NULL) {
        h_errno = NO_RECOVERY;
        return NULL;
    }
    if (shim_in_library != 0 || name == NULL || libc_answers(name)) return real_gethostbyname(name);
    return lookup_static(name, AF_INET);
}

SHIM_EXPORT int gethostbyname2_r(const char* name, int af, struct hostent* ret, char* buf, size_t buflen,
                                 struct hostent** result, int* h_errnop) {
    gethostbyname2_r_fn real = REAL(gethostbyname2_r);
    if (real == NULL) return ENOSYS;
    if (shim_in_library != 0 || name == NULL || ret == NULL || result == NULL || h_errnop == NULL ||
        libc_answers(name)) {
        return real(name, af, ret, buf, buflen, result, h_errnop);
    }
    return lookup_r(name, af, ret, buf, buflen, result, h_errnop);
}

SHIM_EXPORT int gethostbyname_r(const char* name, struct hostent* ret, char* buf, size_t buflen,
                                struct hostent** result, int* h_errnop) {
    gethostbyname_r_fn real = REAL(gethostbyname_r);
    if (real == NULL) return ENOSYS;
    if (shim_in_library != 0 || name == NULL || ret == NULL || result == NULL || h_errnop == NULL ||
        libc_answers(name)) {
        return real(name, ret, buf, buflen, result, h_errnop);
    }
    return lookup_r(name, AF_INET, ret, buf, buflen, result, h_errnop);
}

/* ---- Reverse lookups: no reverse DNS through the modem ---------------------------------------------------- */

static bool local_address(const void* addr, socklen_t len, int type) {
    if (type == AF_INET && len >= 4) {
        struct sockaddr_in in;
        memset(&in, 0, sizeof in);
        in.sin_family = AF_INET;
        memcpy(&in.sin_addr, addr, 4);
        return slmsock_pl_is_local_destination((struct sockaddr*)&in, sizeof in);
    }
    if (type == AF_INET6 && len >= 16) {
        struct sockaddr_in6 in6;
        memset(&in6, 0, sizeof in6);
        in6.sin6_family = AF_INET6;
        memcpy(&in6.sin6_addr, addr, 16);
        return slmsock_pl_is_local_destination((struct sockaddr*)&in6, sizeof in6);
    }
    return true;  // not an IP address: not ours
}

SHIM_EXPORT struct hostent* gethostbyaddr(const void* addr, socklen_t len, int type) {
    gethostbyaddr_fn real = REAL(gethostbyaddr);
    if (real == NULL) {
        h_errno = NO_RECOVERY;
        return NULL;
    }
    if (shim_in_library != 0 || addr == NULL || local_address(addr, len, type)) return real(addr, len, type);
    shim_log("gethostbyaddr: no reverse lookup through the modem");
    h_errno = HOST_NOT_FOUND;
    return NULL;
}

SHIM_EXPORT int gethostbyaddr_r(const void* addr, socklen_t len, int type, struct hostent* ret, char* buf,
                                size_t buflen, struct hostent** result, int* h_errnop) {
    gethostbyaddr_r_fn real = REAL(gethostbyaddr_r);
    if (real == NULL) return ENOSYS;
    if (shim_in_library != 0 || addr == NULL || result == NULL || h_errnop == NULL || local_address(addr, len, type)) {
        return real(addr, len, type, ret, buf, buflen, result, h_errnop);
    }
    shim_log("gethostbyaddr_r: no reverse lookup through the modem");
    *result = NULL;
    *h_errnop = HOST_NOT_FOUND;
    return 0;
}

SHIM_EXPORT int getnameinfo(const struct sockaddr* addr, socklen_t addr_len, char* host, socklen_t host_len,
                            char* serv, socklen_t serv_len, int flags) {
    getnameinfo_fn real = REAL(getnameinfo);
    if (real == NULL) return EAI_SYSTEM;
    if (shim_in_library != 0 || addr == NULL || host == NULL || host_len == 0 || (flags & NI_NUMERICHOST) != 0 ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
        slmsock_pl_is_local_destination(addr, addr_len)) {
        return real(addr, addr_len, host, host_len, serv, serv_len, flags);
    }
    if ((flags & NI_NAMEREQD) != 0) {
        shim_log("getnameinfo: NI_NAMEREQD and no reverse lookup through the modem");
        return EAI_NONAME;
    }
    return real(addr, addr_len, host, host_len, serv, serv_len, flags | NI_NUMERICHOST);
}
