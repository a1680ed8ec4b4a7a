/* cmd_bench.c - `qforge bench kernels`: the CUDA kernels against cuBLAS bf16 (needs a GPU). */
#include <stdio.h>
#include <string.h>

#include "qf_cli.h"
#include "qf_kernels.h"

int qf_cmd_bench(int argc, char **argv)
{
    int json = 0;
    const char *what = NULL;
    qf_error err = {0};
    for (int i = 1; i < argc; i++) {
        if (qf_cli_is_help(argv[i])) {
            printf("usage: qforge bench kernels [--json]\n\n"
                   "Times qforge's dequant-matmul kernels (W4A16, NVFP4, MXFP4, FP8 W8A16 and W8A8) against\n"
                   "cuBLAS bf16 on the Llama-3 shapes N x K = 6144x4096, 4096x14336, 28672x4096, 8192x28672\n"
                   "at M = 1, 16, 128, 1024, 4096 tokens, with the device copy bandwidth measured in the same\n"
                   "run: time, TFLOP/s, GB/s of weight bytes, ratio to cuBLAS. Medians of CUDA-event-timed\n"
                   "launches, weights rotated so L2 cannot hold them. Needs a CUDA build and a GPU.\n"
                   "The CPU figures come from `make bench` (scripts/bench.sh).\n");
            return 0;
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!what && argv[i][0] != '-') what = argv[i];
        else {
            qf_fail(&err, QF_ERR_USAGE, "unexpected argument '%s' (qforge bench --help)", argv[i]);
            return qf_cli_report_error("bench", &err, json);
        }
    }
    if (!what || strcmp(what, "kernels") != 0) {
        qf_fail(&err, QF_ERR_USAGE, "what to benchmark: `qforge bench kernels` (CPU benchmarks: make bench)");
        return qf_cli_report_error("bench", &err, json);
    }
    if (qf_bench_kernels(stdout, json, &err) != QF_OK) return qf_cli_report_error("bench", &err, json);
    return 0;
}
