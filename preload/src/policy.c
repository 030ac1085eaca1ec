/* policy.c — see policy.h. Pure functions: no allocation, no system calls. */
#define _GNU_SOURCE
#include "policy.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

static bool is_v4_loopback_or_any(uint32_t host_order) {
    return (host_order >> 24) == 127 || host_order == 0;
}

static bool v4_mapped(const struct in6_addr* a) { return IN6_IS_ADDR_V4MAPPED(a); }

static uint32_t mapped_v4(const struct in6_addr* a) {
    uint32_t v;
    memcpy(&v, &a->s6_addr[12], 4);
    return ntohl(v);
}

bool slmsock_pl_is_local_destination(const struct sockaddr* addr, socklen_t len) {
    if (addr == NULL) return false;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in* in = (const struct sockaddr_in*)addr;
        return is_v4_loopback_or_any(ntohl(in->sin_addr.s_addr));
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)addr;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) return true;
        return v4_mapped(&in6->sin6_addr) && is_v4_loopback_or_any(mapped_v4(&in6->sin6_addr));
    }
    return false;
}

bool slmsock_pl_is_loopback(const struct sockaddr* addr, socklen_t len) {
    if (addr == NULL) return false;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        return (ntohl(((const struct sockaddr_in*)addr)->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr* a = &((const struct sockaddr_in6*)addr)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (v4_mapped(a) && (mapped_v4(a) >> 24) == 127);
    }
    return false;
}

uint16_t slmsock_pl_port(const struct sockaddr* addr, socklen_t len) {
    if (addr == NULL) return 0;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        return ntohs(((const struct sockaddr_in*)addr)->sin_port);
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        return ntohs(((const struct sockaddr_in6*)addr)->sin6_port);
    }
    return 0;
}

bool slmsock_pl_is_data_endpoint(const struct sockaddr* peer, socklen_t len, uint16_t data_port) {
    if (data_port == 0 || slmsock_pl_port(peer, len) != data_port) return false;
    if (peer->sa_family == AF_INET) {
        return ntohl(((const struct sockaddr_in*)peer)->sin_addr.s_addr) == INADDR_LOOPBACK;
    }
    const struct in6_addr* a = &((const struct sockaddr_in6*)peer)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (v4_mapped(a) && mapped_v4(a) == INADDR_LOOPBACK);
}

static void copy_truncated(const void* full, socklen_t full_len, struct sockaddr* out, socklen_t* out_len) {
    socklen_t n = *out_len < full_len ? *out_len : full_len;
    if (n > 0) memcpy(out, full, n);
    *out_len = full_len;
}

void slmsock_pl_copy_address(const void* full, socklen_t full_len, struct sockaddr* out, socklen_t* out_len) {
    copy_truncated(full, full_len, out, out_len);
}

bool slmsock_pl_fill_address(int socket_family, const struct sockaddr* dest, socklen_t dest_len,
                             struct sockaddr* out, socklen_t* out_len) {
    if (dest == NULL || out == NULL || out_len == NULL) return false;
    if (dest->sa_family == AF_INET && dest_len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in* in = (const struct sockaddr_in*)dest;
        if (socket_family == AF_INET) {
            struct sockaddr_in v4;
            memset(&v4, 0, sizeof v4);
            v4.sin_family = AF_INET;
            v4.sin_port = in->sin_port;
            v4.sin_addr = in->sin_addr;
            copy_truncated(&v4, sizeof v4, out, out_len);
            return true;
        }
        if (socket_family == AF_INET6) {
            struct sockaddr_in6 v6;
            memset(&v6, 0, sizeof v6);
            v6.sin6_family = AF_INET6;
            v6.sin6_port = in->sin_port;
            v6.sin6_addr.s6_addr[10] = 0xff;
            v6.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&v6.sin6_addr.s6_addr[12], &in->sin_addr, 4);
            copy_truncated(&v6, sizeof v6, out, out_len);
            return true;
        }
        return false;
    }
    if (dest->sa_family == AF_INET6 && dest_len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)dest;
        if (socket_family == AF_INET6) {
            struct sockaddr_in6 v6;
            memcpy(&v6, in6, sizeof v6);
            copy_truncated(&v6, sizeof v6, out, out_len);
            return true;
        }
        if (socket_family == AF_INET && v4_mapped(&in6->sin6_addr)) {
            struct sockaddr_in v4;
            memset(&v4, 0, sizeof v4);
            v4.sin_family = AF_INET;
            v4.sin_port = in6->sin6_port;
            memcpy(&v4.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
            copy_truncated(&v4, sizeof v4, out, out_len);
            return true;
        }
        return false;
    }
    return false;
}

bool slmsock_pl_is_numeric_host(const char* name) {
    if (name == NULL || *name == '\0') return false;
    struct in_addr v4;
    if (inet_aton(name, &v4) != 0) return true;
    char buf[INET6_ADDRSTRLEN + 1];
    size_t n = strcspn(name, "%");
    if (n >= sizeof buf) return false;
    memcpy(buf, name, n);
    buf[n] = '\0';
    struct in6_addr v6;
    return inet_pton(AF_INET6, buf, &v6) == 1;
}

static bool ends_with_ci(const char* s, size_t n, const char* suffix) {
    size_t m = strlen(suffix);
    return n >= m && strncasecmp(s + n - m, suffix, m) == 0;
}

bool slmsock_pl_is_localhost_name(const char* name) {
    if (name == NULL) return false;
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.') --n;  // a trailing dot (fully qualified)
    if (n == 9 && strncasecmp(name, "localhost", 9) == 0) return true;
    return ends_with_ci(name, n, ".localhost");
}

bool slmsock_pl_hosts_text_lists(const char* text, size_t len, const char* name) {
    if (text == NULL || name == NULL || *name == '\0') return false;
    size_t name_len = strlen(name);
    if (name_len > 0 && name[name_len - 1] == '.') --name_len;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && text[end] != '\n') ++end;
        size_t line_end = end;
        for (size_t k = i; k < end; ++k) {
            if (text[k] == '#') {
                line_end = k;
                break;
            }
        }
        // Fields: address, canonical name, aliases...
        size_t p = i;
        int field = 0;
        while (p < line_end) {
            while (p < line_end && (text[p] == ' ' || text[p] == '\t' || text[p] == '\r')) ++p;
            size_t start = p;
            while (p < line_end && text[p] != ' ' && text[p] != '\t' && text[p] != '\r') ++p;
            if (p == start) break;
            if (field > 0 && p - start == name_len && strncasecmp(text + start, name, name_len) == 0) return true;
            ++field;
        }
        i = end + 1;
    }
    return false;
}

int slmsock_pl_resolve_error_to_eai(int rc) {
    switch (rc) {
    case EAI_BADFLAGS:
    case EAI_NONAME:
    case EAI_AGAIN:
    case EAI_FAIL:
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_SERVICE:
    case EAI_MEMORY:
    case EAI_OVERFLOW:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return rc;
    default:
        return EAI_AGAIN;
    }
}

int slmsock_pl_eai_to_h_errno(int eai) {
    switch (eai) {
    case EAI_NONAME:
        return HOST_NOT_FOUND;
#ifdef EAI_NODATA
    case EAI_NODATA:
        return NO_DATA;
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
        return NO_DATA;
#endif
    case EAI_AGAIN:
        return TRY_AGAIN;
    default:
        return NO_RECOVERY;
    }
}

static bool same_address(const struct sockaddr_storage* a, const struct sockaddr_storage* b) {
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET) {
        return ((const struct sockaddr_in*)a)->sin_addr.s_addr == ((const struct sockaddr_in*)b)->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        return memcmp(&((const struct sockaddr_in6*)a)->sin6_addr, &((const struct sockaddr_in6*)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    }
    return false;
}

size_t slmsock_pl_dedupe(struct sockaddr_storage* addresses, size_t count) {
    size_t out = 0;
    for (size_t i = 0; i < count; ++i) {
        bool seen = false;
        for (size_t j = 0; j < out; ++j) {
            if (same_address(&addresses[j], &addresses[i])) {
                seen = true;
                break;
            }
        }
        if (!seen) {
            if (out != i) addresses[out] = addresses[i];
            ++out;
        }
    }
    return out;
}

bool slmsock_pl_is_wildcard(const struct sockaddr* addr, socklen_t len) {
    if (addr == NULL) return false;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        return ((const struct sockaddr_in*)addr)->sin_addr.s_addr == htonl(INADDR_ANY);
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr* a = &((const struct sockaddr_in6*)addr)->sin6_addr;
        return IN6_IS_ADDR_UNSPECIFIED(a) || (v4_mapped(a) && mapped_v4(a) == INADDR_ANY);
    }
    return false;
}

bool slmsock_pl_is_loopback_host(const struct sockaddr* addr, socklen_t len) {
    if (addr == NULL) return false;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        return ntohl(((const struct sockaddr_in*)addr)->sin_addr.s_addr) == INADDR_LOOPBACK;
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr* a = &((const struct sockaddr_in6*)addr)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (v4_mapped(a) && mapped_v4(a) == INADDR_LOOPBACK);
    }
    return false;
}

socklen_t slmsock_pl_loopback(int family, uint16_t port, struct sockaddr_storage* out) {
    memset(out, 0, sizeof *out);
    if (family == AF_INET) {
        struct sockaddr_in* in = (struct sockaddr_in*)out;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof *in;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6* in6 = (struct sockaddr_in6*)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        in6->sin6_addr = in6addr_loopback;
        return sizeof *in6;
    }
    return 0;
}

socklen_t slmsock_pl_wildcard(int family, uint16_t port, struct sockaddr_storage* out) {
    memset(out, 0, sizeof *out);
    if (family == AF_INET) {
        struct sockaddr_in* in = (struct sockaddr_in*)out;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        return sizeof *in;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6* in6 = (struct sockaddr_in6*)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        return sizeof *in6;
    }
    return 0;
}

bool slmsock_pl_address_is(const struct sockaddr* addr, socklen_t len, const char* text) {
    if (addr == NULL || text == NULL || *text == '\0') return false;
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
            return ((const struct sockaddr_in*)addr)->sin_addr.s_addr == v4.s_addr;
        }
        if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
            const struct in6_addr* a = &((const struct sockaddr_in6*)addr)->sin6_addr;
            return v4_mapped(a) && memcmp(&a->s6_addr[12], &v4, 4) == 0;
        }
        return false;
    }
    if (inet_pton(AF_INET6, text, &v6) == 1 && addr->sa_family == AF_INET6 &&
        len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        return memcmp(&((const struct sockaddr_in6*)addr)->sin6_addr, &v6, sizeof v6) == 0;
    }
    return false;
}

enum slmsock_pl_listen slmsock_pl_listen_policy(const char* value) {
    if (value != NULL && strcmp(value, "modem") == 0) return SLMSOCK_PL_LISTEN_MODEM;
    return SLMSOCK_PL_LISTEN_LOCAL;
}
