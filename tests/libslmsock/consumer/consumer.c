/* Owns: a C program using the installed slmsock.h — it must compile as C and link from outside the tree. */
#include <stdio.h>
#include <sys/socket.h>

#include <slmsock.h>

int main(void) {
    int rc = slmsock_tcp_connect("192.0.2.1", 80, AF_INET);
    printf("%s: %s\n", slmsock_socket_path(), slmsock_strerror(rc));
    return rc < 0 ? 0 : 1;
}
