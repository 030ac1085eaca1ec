/* Owns: what slmd changes in how Boost.Asio 1.81 uses liburing 2.3: no stale user_data on the submissions Asio
 * makes without setting it, and a ring sized for a daemon.
 *
 * Found by: the soak run, where slmd's serial read ended with "End of file" about three times a minute,
 * each time right after a UDP stand-in socket was cancelled. Cause: liburing 2.3 (Debian 12) does not
 * clear sqe->user_data in io_uring_prep_rw(), and Boost 1.81's io_uring backend sets no user_data after
 * io_uring_prep_cancel() and after the io_uring_prep_timeout_remove() in io_uring_service::run(). The
 * submission then carries the user_data of whatever last used that ring slot (16384 submissions ago):
 * often another descriptor's operation queue. When the cancel completes (res 0), Asio treats that as the
 * other queue's completion: a pending read on the serial port "completes" with 0 bytes, which is EOF.
 * The same stale completion can make a receive vanish (seen earlier as a lost first UDP datagram).
 *
 * This header sits before the system include directory for every target that uses Asio (see the
 * top-level CMakeLists.txt) and wraps the two preparation calls: a cancel carries user_data 0, which
 * Asio ignores; a timeout removal carries the removed timeout's user_data, which is what run() counts
 * (update_timeout() overrides it with its own afterwards). Regression test:
 * tests/unit/asio_uring_cancel_test.cpp. Remove it once the project requires a liburing or Boost that sets the
 * field itself.
 */
#ifndef SLMD_COMPAT_LIBURING_H
#define SLMD_COMPAT_LIBURING_H

#pragma GCC system_header
#include_next <liburing.h>

static inline void slmd_io_uring_prep_cancel_without_stale_data(struct io_uring_sqe* sqe, void* user_data,
                                                                int flags) {
    io_uring_prep_cancel(sqe, user_data, flags);
    io_uring_sqe_set_data(sqe, 0);
}

static inline void slmd_io_uring_prep_timeout_remove_without_stale_data(struct io_uring_sqe* sqe,
                                                                        __u64 user_data, unsigned flags) {
    io_uring_prep_timeout_remove(sqe, user_data, flags);
    sqe->user_data = user_data; /* counted as the removed timeout's own (Asio's run() expects &ts twice) */
}

/* Asio 1.81 hard-codes a ring of 16384 entries: 1 MiB of submission entries and 512 KiB of completions, 1.57 MiB
 * of slmd's idle RSS once the slots have been used (docs/performance.md). slmd has at most a few hundred
 * operations in flight (one per client socket and direction, the serial port, timers); Asio submits when the
 * submission queue is full, and the kernel keeps completions beyond the completion ring (IORING_FEAT_NODROP),
 * so a smaller ring costs nothing but memory it no longer takes. */
#define SLMD_IO_URING_ENTRIES 1024u

static inline int slmd_io_uring_queue_init_sized(unsigned entries, struct io_uring* ring, unsigned flags) {
    return io_uring_queue_init(entries > SLMD_IO_URING_ENTRIES ? SLMD_IO_URING_ENTRIES : entries, ring, flags);
}

#define io_uring_prep_cancel slmd_io_uring_prep_cancel_without_stale_data
#define io_uring_prep_timeout_remove slmd_io_uring_prep_timeout_remove_without_stale_data
#define io_uring_queue_init slmd_io_uring_queue_init_sized

#endif
