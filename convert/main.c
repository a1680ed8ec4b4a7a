/* main.c - the qforge command: dispatch to a subcommand (convert/cmd_*.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_cli.h"
#include "qf_gpu_calib.h"
#include "qf_linalg.h"
#include "qf_matmul.h"
#include "qf_version.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} qf_command;

static const qf_command qf_commands[] = {
    {"convert", qf_cmd_convert, "quantize a Hugging Face checkpoint into a loadable artifact"},
    {"verify", qf_cmd_verify, "recompute every hash of an artifact against its manifest (--key: and its signature)"},
    {"sign", qf_cmd_sign, "write a detached OpenSSF model-signing signature (model.sig) with your key"},
    {"hash", qf_cmd_hash, "print the SHA-256 of every file of a folder, as sha256sum does"},
    {"inspect", qf_cmd_inspect, "list tensors, dtypes, sizes and quantization of a folder"},
    {"tokenize", qf_cmd_tokenize, "tokenize a text file with a model's tokenizer.json"},
    {"validate", qf_cmd_validate, "perplexity of a model, KLD / top-1 drift of an artifact against it (ppl-512)"},
    {"bench", qf_cmd_bench, "time the CUDA kernels against cuBLAS bf16 (GPU)"},
    {"merge", qf_cmd_merge, "assemble the parts of a partitioned (--layers) conversion"},
    {"synth", qf_cmd_synth, "write a random-weight checkpoint of a real model's shapes (for tests, benchmarks)"},
};

static void qf_usage(FILE *f)
{
    fprintf(f, "qforge %s - quantize, verify and validate open-weight LLM checkpoints\n\n"
               "usage: qforge <command> [options]   (qforge <command> --help for details)\n\n"
               "commands:\n", QF_VERSION);
    for (size_t i = 0; i < sizeof qf_commands / sizeof qf_commands[0]; i++)
        fprintf(f, "  %-10s %s\n", qf_commands[i].name, qf_commands[i].summary);
    fprintf(f, "\nexit codes: 0 ok, 2 usage, 3 I/O, 4 malformed input, 5 unsupported, 6 verify failed,\n"
               "7 threshold exceeded, 8 out of memory, 9 CUDA, 10 interrupted, 11 refused as unsafe,\n"
               "12 metric not finite, 13 no signature, 14 bad signature, 15 wrong key, 16 files added/removed\n"
               "(docs/cli.md).  Example:\n"
               "  qforge convert tests/data/tiny-llama -o /tmp/tl-w4 --scheme w4a16\n"
               "  qforge verify /tmp/tl-w4\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || qf_cli_is_help(argv[1])) {
        qf_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("qforge %s\n", QF_VERSION);
        return 0;
    }
    /* the library reads no environment: what the variables choose is set here */
    if (getenv("QF_NO_AVX512")) { /* AVX2 kernels on an AVX-512 CPU (docs/calibration.md) */
        qf_linalg_set_isa(2);
        if (!strcmp(qf_matmul_kernel_name(), "avx512")) qf_matmul_use_kernel("avx2");
    }
    const int dev = qf_device_mode_parse(getenv("QF_DEVICE")); /* --device overrides it */
    if (dev >= 0) qf_gpu_calib_set_mode((qf_device_mode)dev);
    for (size_t i = 0; i < sizeof qf_commands / sizeof qf_commands[0]; i++)
        if (strcmp(argv[1], qf_commands[i].name) == 0) return qf_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qforge: unknown command '%s' (qforge --help lists them)\n", argv[1]);
    return 2;
}
