/* Single-core int8 dot-product ceiling of this CPU: loops of independent vpdpbusd (u8 × i8,
 * four products summed into each i32 lane) with their operands in registers (zmm and ymm)
 * or the u8 operand broadcast from L1 ({1to16}, as the int8 GEMM tile reads its A rows),
 * and one mixed with vpmaddubsw to see whether another port adds throughput. Timed by the
 * thread's CPU time (best of 15), so other jobs on a shared machine do not count. The int8
 * GEMM's efficiency is quoted against the best line; with `MACS` given (e.g. 679477248,
 * MiniLM-L3's GEMMs at 1×128) it also prints the time those multiply-adds need at least.
 *
 *     gcc -O2 -o /tmp/vnni_peak bench/vnni_peak.c && /tmp/vnni_peak 679477248
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define Z(i) "vpdpbusd %%zmm30, %%zmm31, %%zmm" #i "\n\t"
#define Y(i) "vpdpbusd %%ymm30, %%ymm31, %%ymm" #i "\n\t"
#define ZB(i) "vpdpbusd (%1)%{1to16%}, %%zmm31, %%zmm" #i "\n\t"
#define M(i) "vpmaddubsw %%ymm30, %%ymm31, %%ymm" #i "\n\t"
#define ZERO "vpxord %%zmm30,%%zmm30,%%zmm30\n\tvpxord %%zmm31,%%zmm31,%%zmm31\n\t1:\n\t"
#define LOOP "dec %0\n\tjnz 1b"

static int one[16] __attribute__((aligned(64)));

/* Each loop body is 20 dot-product instructions. */
static void zmm20(long n) {
    __asm__ volatile(ZERO Z(0) Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) Z(8) Z(9) Z(10) Z(11) Z(12)
                         Z(13) Z(14) Z(15) Z(16) Z(17) Z(18) Z(19) LOOP
                     : "+r"(n)::"memory");
}
static void ymm20(long n) {
    __asm__ volatile(ZERO Y(0) Y(1) Y(2) Y(3) Y(4) Y(5) Y(6) Y(7) Y(8) Y(9) Y(10) Y(11) Y(12)
                         Y(13) Y(14) Y(15) Y(16) Y(17) Y(18) Y(19) LOOP
                     : "+r"(n)::"memory");
}
static void zmm20_bcast(long n) {
    __asm__ volatile(ZERO ZB(0) ZB(1) ZB(2) ZB(3) ZB(4) ZB(5) ZB(6) ZB(7) ZB(8) ZB(9) ZB(10)
                         ZB(11) ZB(12) ZB(13) ZB(14) ZB(15) ZB(16) ZB(17) ZB(18) ZB(19) LOOP
                     : "+r"(n)
                     : "r"(one)
                     : "memory");
}
/* 20 vpdpbusd ymm and 10 vpmaddubsw ymm per loop body (only the former counted). */
static void ymm20_mixed(long n) {
    __asm__ volatile(ZERO Y(0) Y(1) Y(2) Y(3) Y(4) Y(5) Y(6) Y(7) Y(8) Y(9) M(20) M(21) M(22)
                         M(23) M(24) Y(10) Y(11) Y(12) Y(13) Y(14) Y(15) Y(16) Y(17) Y(18) Y(19)
                             M(25) M(26) M(27) M(28) M(29) LOOP
                     : "+r"(n)::"memory");
}

static double best_gmacs;

static void run(const char *name, void (*f)(long), int lanes) {
    long n = 5000000;
    double best = 1e9;
    for (int r = 0; r < 15; r++) {
        double t = now();
        f(n);
        t = now() - t;
        if (t < best) best = t;
    }
    double ops = (double)n * 20;
    double gmacs = ops * lanes * 4 / best * 1e-9;
    if (gmacs > best_gmacs) best_gmacs = gmacs;
    printf("%-36s %6.1f G MAC/s  %5.2f G vpdpbusd/s\n", name, gmacs, ops / best * 1e-9);
}

int main(int argc, char **argv) {
    run("zmm, 20 accumulators", zmm20, 16);
    run("ymm, 20 accumulators", ymm20, 8);
    run("zmm, 20 acc, u8 broadcast from L1", zmm20_bcast, 16);
    run("ymm, 20 acc, + 10 vpmaddubsw", ymm20_mixed, 8);
    if (argc > 1) {
        double macs = atof(argv[1]);
        printf("%.0f multiply-adds need at least %.3f ms at %.1f G MAC/s\n", macs,
               macs / best_gmacs * 1e-6, best_gmacs);
    }
    return 0;
}
