/* slm-run — run an unmodified program with its TCP connections and name lookups going through the nRF91 modem
 * that slmd manages: puts libslmsock-preload.so first in LD_PRELOAD and executes the command.
 *
 * The shim is found relative to this program (/proc/self/exe), so an installed tree can be moved and the
 * build tree works too:
 *   1. $SLMSOCK_PRELOAD, if set;
 *   2. <dir of slm-run>/SLMRUN_SHIM_RELATIVE (installed: ../lib/<multiarch>/slmd/libslmsock-preload.so);
 *   3. <dir of slm-run>/libslmsock-preload.so (the build tree puts both in build/preload/). */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef SLMRUN_VERSION
#define SLMRUN_VERSION "0"
#endif
#ifndef SLMRUN_SHIM_RELATIVE
#define SLMRUN_SHIM_RELATIVE "../lib/slmd/libslmsock-preload.so"
#endif
#define SHIM_NAME "libslmsock-preload.so"

enum { EXIT_USAGE = 2, EXIT_OWN_FAILURE = 125, EXIT_CANNOT_RUN = 126, EXIT_NOT_FOUND = 127 };

static void usage(FILE* out) {
    fprintf(out,
            "Usage: slm-run [OPTIONS] [--] COMMAND [ARG...]\n"
            "Runs COMMAND with its TCP connections, UDP datagrams, servers and DNS lookups going through the nRF91\n"
            "modem managed by slmd\n"
            "(LD_PRELOAD of " SHIM_NAME ").\n"
            "\n"
            "Options:\n"
            "  -s, --socket PATH  slmd's API socket (sets SLMSOCK_SOCKET)\n"
            "      --strict       refuse connections that would not go through the modem, loopback excepted\n"
            "                     (sets SLMSOCK_STRICT=1)\n"
            "  -d, --debug        one line on stderr per routing decision (sets SLMSOCK_DEBUG=1)\n"
            "  -l, --listen MODE  where servers bound to the wildcard address (0.0.0.0, ::) listen: local,\n"
            "                     the host's own networks (the default), or modem (sets SLMSOCK_LISTEN)\n"
            "  -h, --help         show this help\n"
            "      --version      print the version\n"
            "\n"
            "Environment passed to COMMAND: SLMSOCK_SOCKET, SLMSOCK_STRICT, SLMSOCK_DEBUG, SLMSOCK_LISTEN.\n"
            "SLMSOCK_PRELOAD overrides the path of the shim.\n"
            "Exit status: COMMAND's; 127 if COMMAND is not found, 126 if it cannot be run, 125 if slm-run\n"
            "itself fails, 2 on a usage error. Statically linked and set-uid/set-gid commands are run with a\n"
            "warning: the shim cannot act in them.\n");
}

static bool is_file(const char* path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The shim's absolute path into out, or false. */
static bool find_shim(char* out, size_t size) {
    const char* forced = getenv("SLMSOCK_PRELOAD");
    if (forced != NULL && *forced != '\0') {
        if (!is_file(forced) || realpath(forced, out) == NULL) {
            fprintf(stderr, "slm-run: SLMSOCK_PRELOAD=%s: no such file\n", forced);
            return false;
        }
        return true;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "slm-run: cannot read /proc/self/exe: %s\n", strerror(errno));
        return false;
    }
    self[n] = '\0';
    char* slash = strrchr(self, '/');
    if (slash == NULL) return false;
    slash[1] = '\0';
    const char* candidates[] = {SLMRUN_SHIM_RELATIVE, SHIM_NAME};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; ++i) {
        char path[PATH_MAX * 2];
        if (candidates[i][0] == '/') {
            snprintf(path, sizeof path, "%s", candidates[i]);
        } else {
            snprintf(path, sizeof path, "%s%s", self, candidates[i]);
        }
        if (is_file(path) && realpath(path, out) != NULL) return true;
    }
    fprintf(stderr, "slm-run: cannot find " SHIM_NAME " (looked in %s%s and %s)\n", self, SLMRUN_SHIM_RELATIVE,
            self);
    (void)size;
    return false;
}

/* The file execvp() would run for `command`, or false (not found). */
static bool find_command(const char* command, char* out, size_t size) {
    if (strchr(command, '/') != NULL) {
        snprintf(out, size, "%s", command);
        return access(out, F_OK) == 0;
    }
    const char* path = getenv("PATH");
    if (path == NULL) path = "/bin:/usr/bin";
    while (true) {
        const char* end = strchr(path, ':');
        size_t len = end != NULL ? (size_t)(end - path) : strlen(path);
        if (len == 0) {
            snprintf(out, size, "./%s", command);
        } else {
            snprintf(out, size, "%.*s/%s", (int)len, path, command);
        }
        if (is_file(out) && access(out, X_OK) == 0) return true;
        if (end == NULL) return false;
        path = end + 1;
    }
}

/* 1: an ELF file with no PT_INTERP (statically linked), 0: dynamic or not ELF (a script), -1: unreadable. */
static int statically_linked(const char* path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    unsigned char ident[EI_NIDENT];
    int result = 0;
    if (pread(fd, ident, sizeof ident, 0) != (ssize_t)sizeof ident || memcmp(ident, ELFMAG, SELFMAG) != 0) goto out;
    if (ident[EI_CLASS] == ELFCLASS64) {
        Elf64_Ehdr eh;
        if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || eh.e_phentsize != sizeof(Elf64_Phdr)) goto out;
        if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) goto out;
        result = 1;
        for (unsigned i = 0; i < eh.e_phnum; ++i) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (Elf64_Off)i * sizeof ph)) != (ssize_t)sizeof ph) {
                result = 0;
                break;
            }
            if (ph.p_type == PT_INTERP) {
                result = 0;
                break;
            }
        }
    } else if (ident[EI_CLASS] == ELFCLASS32) {
        Elf32_Ehdr eh;
        if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || eh.e_phentsize != sizeof(Elf32_Phdr)) goto out;
        if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) goto out;
        result = 1;
        for (unsigned i = 0; i < eh.e_phnum; ++i) {
            Elf32_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (Elf32_Off)i * sizeof ph)) != (ssize_t)sizeof ph) {
                result = 0;
                break;
            }
            if (ph.p_type == PT_INTERP) {
                result = 0;
                break;
            }
        }
    }
out:
    close(fd);
    return result;
}

static void warn_if_shim_cannot_act(const char* command, const char* path) {
    if (statically_linked(path) == 1) {
        fprintf(stderr, "slm-run: warning: %s is statically linked: its connections will not go through the modem\n",
                command);
        return;
    }
    struct stat st;
    if (stat(path, &st) != 0) return;
    bool secure = ((st.st_mode & S_ISUID) != 0 && st.st_uid != getuid()) ||
                  ((st.st_mode & S_ISGID) != 0 && st.st_gid != getgid());
    if (!secure && getuid() != 0 && getxattr(path, "security.capability", NULL, 0) > 0) secure = true;
    if (secure) {
        fprintf(stderr,
                "slm-run: warning: %s is set-uid, set-gid or has file capabilities: the loader ignores LD_PRELOAD, "
                "so its connections will not go through the modem\n",
                command);
    }
}

/* True when the colon/space separated list already names `shim`. */
static bool preload_lists(const char* list, const char* shim) {
    size_t n = strlen(shim);
    const char* p = list;
    while (*p != '\0') {
        size_t len = strcspn(p, ": ");
        if (len == n && strncmp(p, shim, n) == 0) return true;
        p += len;
        if (*p != '\0') ++p;
    }
    return false;
}

int main(int argc, char** argv) {
    int i = 1;
    for (; i < argc; ++i) {
        const char* a = argv[i];
        if (strcmp(a, "--") == 0) {
            ++i;
            break;
        }
        if (a[0] != '-') break;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("slm-run (slmd) %s\n", SLMRUN_VERSION);
            return 0;
        }
        if (strcmp(a, "--strict") == 0) {
            setenv("SLMSOCK_STRICT", "1", 1);
        } else if (strcmp(a, "-d") == 0 || strcmp(a, "--debug") == 0) {
            setenv("SLMSOCK_DEBUG", "1", 1);
        } else if (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "slm-run: %s needs a path\n", a);
                return EXIT_USAGE;
            }
            setenv("SLMSOCK_SOCKET", argv[++i], 1);
        } else if (strncmp(a, "--socket=", 9) == 0) {
            setenv("SLMSOCK_SOCKET", a + 9, 1);
        } else if (strcmp(a, "-l") == 0 || strcmp(a, "--listen") == 0 || strncmp(a, "--listen=", 9) == 0) {
            const char* mode = a[2] == 'l' && a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (mode == NULL || (strcmp(mode, "modem") != 0 && strcmp(mode, "local") != 0)) {
                fprintf(stderr, "slm-run: --listen needs modem or local\n");
                return EXIT_USAGE;
            }
            setenv("SLMSOCK_LISTEN", mode, 1);
        } else {
            fprintf(stderr, "slm-run: unknown option %s\n", a);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "slm-run: no command given\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    char** command = &argv[i];
    /* Servers on the wildcard address are the modem's by default; said explicitly so children see it too. */
    setenv("SLMSOCK_LISTEN", getenv("SLMSOCK_LISTEN") != NULL && *getenv("SLMSOCK_LISTEN") != '\0'
                                 ? getenv("SLMSOCK_LISTEN") : "local", 1);

    char shim[PATH_MAX];
    if (!find_shim(shim, sizeof shim)) return EXIT_OWN_FAILURE;
    if (strpbrk(shim, ": ") != NULL) {
        fprintf(stderr, "slm-run: the shim's path %s contains ':' or ' ', which LD_PRELOAD cannot hold\n", shim);
        return EXIT_OWN_FAILURE;
    }

    char path[PATH_MAX * 2];
    if (!find_command(command[0], path, sizeof path)) {
        fprintf(stderr, "slm-run: %s: command not found\n", command[0]);
        return EXIT_NOT_FOUND;
    }
    warn_if_shim_cannot_act(command[0], path);

    const char* old = getenv("LD_PRELOAD");
    if (old == NULL || *old == '\0') {
        setenv("LD_PRELOAD", shim, 1);
    } else if (!preload_lists(old, shim)) {
        size_t len = strlen(shim) + 1 + strlen(old) + 1;
        char* value = malloc(len);
        if (value == NULL) return EXIT_OWN_FAILURE;
        snprintf(value, len, "%s:%s", shim, old);
        setenv("LD_PRELOAD", value, 1);
        free(value);
    }

    execvp(command[0], command);
    const int error = errno;
    fprintf(stderr, "slm-run: %s: %s\n", command[0], strerror(error));
    return error == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}
