/* A statically linked program: slm-run must warn that the shim cannot act in it, and still run it. */
#include <stdio.h>

int main(void) {
    puts("static hello");
    return 0;
}
