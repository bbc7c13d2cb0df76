/* How fast this machine's cores read memory in a plain loop: the ceiling the one-row
 * matrix kernels are held against in the README.
 *
 *     cc -O3 -march=native -pthread scripts/stream_bw.c -o stream_bw
 *     ./stream_bw THREADS STREAMS
 *
 * Reads a 1 GiB buffer (written once first) seven times and prints each pass's GB/s.
 * THREADS threads each read their own contiguous share. STREAMS > 1 makes each thread
 * read its share as that many regions interleaved line by line (line i of region 0, line i
 * of region 1, ...), the pattern the Q6_K kernel read before its panel blocks were put in
 * order. The sums only keep the compiler from dropping the loads. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { LINE = 64, WORDS = LINE / 8 };

static const uint64_t *buffer;
static size_t words;
static int threads, streams;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *read_share(void *arg) {
    size_t share = words / threads, region = share / streams;
    const uint64_t *base = buffer + (size_t)(intptr_t)arg * share;
    uint64_t acc[WORDS] = {0};
    for (size_t i = 0; i + WORDS <= region; i += WORDS)
        for (int s = 0; s < streams; s++)
            for (int w = 0; w < WORDS; w++)
                acc[w] += base[s * region + i + w];
    uint64_t sum = 0;
    for (int w = 0; w < WORDS; w++)
        sum += acc[w];
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    if (argc != 3 || (threads = atoi(argv[1])) < 1 || threads > 64 ||
        (streams = atoi(argv[2])) < 1) {
        fprintf(stderr, "usage: %s THREADS STREAMS\n", argv[0]);
        return 2;
    }
    size_t bytes = (size_t)1 << 30;
    uint64_t *p = aligned_alloc(LINE, bytes);
    if (!p) {
        fprintf(stderr, "no memory for 1 GiB\n");
        return 1;
    }
    memset(p, 1, bytes);
    buffer = p;
    words = bytes / 8;
    uintptr_t check = 0;
    for (int pass = 0; pass < 7; pass++) {
        pthread_t th[64];
        double t = now();
        for (int i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, read_share, (void *)(intptr_t)i);
        for (int i = 0; i < threads; i++) {
            void *sum;
            pthread_join(th[i], &sum);
            check += (uintptr_t)sum;
        }
        printf("%d thread(s), %d stream(s) each: %.1f GB/s\n", threads, streams,
               bytes / (now() - t) / 1e9);
    }
    return check == 0; /* never: every word is nonzero */
}
