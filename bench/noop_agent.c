/* The no-op agent for the run benchmarks: its first act is to take the time (CLOCK_MONOTONIC,
 * the same clock as the service's), then it appends "<task_id> <ns>" to $BENCH_LEDGER, exits 0. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    const char *ledger = getenv("BENCH_LEDGER");
    if (argc < 2 || ledger == NULL) return 2;
    char line[256];
    int n = snprintf(line, sizeof line, "%s %lld\n", argv[1],
                     (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    int fd = open(ledger, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n) return 3;
    close(fd);
    puts("ok");
    return 0;
}
