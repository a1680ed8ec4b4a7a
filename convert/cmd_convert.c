/* cmd_convert.c - `qforge convert`: argument parsing and reporting around qf_convert_run. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_cli.h"
#include "convert_output.h"
#include "qf_convert.h"
#include "qf_gpu_calib.h"
#include "qf_modelopt.h"
#include "qf_sign.h"
#include "qforge.h"

static void qf_convert_help(void)
{
    printf("usage: qforge convert MODEL_DIR -o OUT_DIR (--scheme SCHEME | --target-bits B) [options]\n\n"
           "Quantize every Linear weight of a Hugging Face checkpoint (sharded safetensors, or PyTorch\n"
           ".bin / .pt read without running any pickle code) and write a folder vLLM / SGLang load\n"
           "as-is (compressed-tensors layout), with the tokenizer, config.json (+ quantization_config)\n"
           "and a sealed qforge.manifest.json.\n\n"
           "schemes:\n"
           "  fp8-dynamic  E4M3 weights, per-channel scale; activations per token at run time\n"
           "  w4a16        int4 weights, groups of 128, symmetric (scale = absmax/7)\n"
           "  w4a16-asym   int4 weights, groups of 128, with zero points (min/max range)\n"
           "  nvfp4a16     E2M1 weights, E4M3 scale per 16, FP32 global scale\n"
           "  mxfp4a16     E2M1 weights, E8M0 scale per 32\n"
           "  w8a8         int8 weights per channel; int8 activations per token at run time\n"
           "  fp8          E4M3 weights, per-tensor scale; static per-tensor activation scale (calibrated)\n"
           "  nvfp4        nvfp4a16 weights + E2M1 activations under a calibrated global scale (W4A4)\n\n"
           "methods:\n"
           "  rtn          round to nearest (default); fp8/nvfp4 still run calibration for their\n"
           "               activation scales\n"
           "  gptq         GPTQ from each Linear's input Hessian, layer by layer on calibration text\n"
           "  awq          AWQ per-channel scales folded into the norms + clipping search, then RTN\n"
           "  awq-gptq     AWQ scales and clipping, then GPTQ (on the fixtures gptq with its default\n"
           "               clip search is as good or better: docs/bench.md)\n\n"
           "options:\n"
           "  -o, --out DIR         destination folder (must not exist)\n"
           "  --scheme NAME         one of the schemes above\n"
           "  --method NAME         rtn (default), gptq, awq, awq-gptq; imatrix (--layout gguf)\n"
           "  --calib FILE          calibration text (plain, or JSONL with a \"text\" field); default: the\n"
           "                        bundled sample of the fixtures' training domain. Never the eval text.\n"
           "  --calib-samples N     calibration windows (default 128)\n"
           "  --calib-seqlen L      tokens per window (default 512)\n"
           "  --seed S              sampling seed (default 0)\n"
           "  --act-order           GPTQ: columns by decreasing Hessian diagonal\n"
           "  --damp X              GPTQ dampening, fraction of mean diag(H) (default 0.01)\n"
           "  --clip-search N       try N range shrinks (down to 0.75) when a group's scale is set, keep\n"
           "                        the one that rounds the group best: weighted by GPTQ's loss\n"
           "                        (gptq: default 20) or plain squared error (rtn: default 10 for\n"
           "                        int4 and nvfp4, 0 for the rest). 0 = each group's full range,\n"
           "                        the textbook rule (and the fixtures' reference numbers)\n"
           "  --refit N             GPTQ: after the sweep, re-choose the stored scales for the chosen\n"
           "                        codes (N rounds of refit + re-sweep; default 0 = off)\n"
           "  --descent N           GPTQ: after the sweep, coordinate descent on the codes (at most N\n"
           "                        sweeps; each move lowers the Linear's output error; default 0)\n"
           "  --block N             GPTQ lazy-update block (default 128)\n"
           "  --calib-target T      gptq, awq, awq-gptq: what each Linear's rounding reproduces. float\n"
           "                        (default): the float model's output for the same tokens, so each\n"
           "                        Linear also corrects the error earlier layers left in its input\n"
           "                        (the float model runs beside: 1.5-2x the calibration time).\n"
           "                        quantized: its float weights on the quantized model's inputs\n"
           "                        (textbook GPTQ / AWQ)\n"
           "  --moe-floor F         MoE: each expert's statistics weight a token by its routing weight\n"
           "                        r as sqrt(r^2 + F) (default 0.001: every token counts a little);\n"
           "                        'all' = every token equally\n"
           "  --smoothquant ALPHA   SmoothQuant pre-pass (w8a8, fp8), e.g. 0.5\n"
           "  --rotate KIND         fold orthogonal rotations into the weights before calibrating\n"
           "                        (QuaRot / SpinQuant: the residual stream, and values / outputs per\n"
           "                        head); the float model is unchanged, outliers are spread out.\n"
           "                        hadamard (randomized Hadamard), orthogonal (random, any size) or\n"
           "                        none (default). Makes the run calibrated (--method rtn included)\n"
           "  --rotate-seed N       the rotations' seed (default 0)\n"
           "  --rotate-block N      rotate each N channels on their own (block-diagonal; N divides the\n"
           "                        hidden size, e.g. 16 = nvfp4's group); default 0 = all channels\n"
           "  --layout NAME         compressed-tensors (default, vLLM / SGLang), modelopt (TensorRT-LLM,\n"
           "                        vLLM: hf_quant_config.json), gguf (llama.cpp: --scheme q4_k_m,\n"
           "                        q4_k_s, q5_k_m, q5_k_s, q6_k, q8_0, q4_0, q4_1, q5_0, q5_1 as\n"
           "                        llama-quantize mixes them; q4_k, f16, bf16, f32 plain;\n"
           "                        --method rtn, imatrix or gptq)\n"
           "  --to safetensors      no quantization: write the checkpoint (e.g. PyTorch .bin) as plain\n"
           "                        safetensors (no --scheme)\n"
           "  --target-bits B       mixed precision: choose per Linear among w4a16-asym, w4a16, nvfp4a16,\n"
           "                        w8a8 and bf16 so that the quantized Linears take at most B bits per\n"
           "                        weight (scales and zero points included) with the least estimated\n"
           "                        KL divergence (each Linear measured alone in each format on a few\n"
           "                        calibration windows). Fused q/k/v, gate/up and all MoE experts\n"
           "                        share a format. --scheme may be omitted (or w4a16-asym); any\n"
           "                        --method applies to every quantized Linear (docs/cli.md)\n"
           "  --target-size SIZE    the same, with the budget as the bytes of all the artifact's tensors\n"
           "                        (e.g. 18M; K M G T = powers of 1000): the Linears get what the\n"
           "                        tensors kept as they are (embeddings, lm_head, norms) leave\n"
           "  --target-samples N    calibration windows of that measurement (default 4)\n"
           "  --ignore REGEX        keep modules matching REGEX (POSIX extended, on module names such as\n"
           "                        model.layers.0.mlp.down_proj) in full precision; repeatable. Always kept:\n"
           "                        lm_head, embeddings, norms, MoE routers\n"
           "  --max-shard-size N    bytes per output shard, suffixes K M G (default 5G)\n"
           "  --threads N           worker threads (default: all cores)\n"
           "  --max-memory SIZE     host-memory budget, e.g. 8G or 512M (K M G T = powers of 1000, Ki Mi Gi\n"
           "                        Ti = of 1024; default: 3/4 of the RAM or of the cgroup/Slurm limit).\n"
           "                        Calibration keeps one decoder layer resident and spills the\n"
           "                        activations of all calibration tokens to OUT_DIR.qforge-tmp when\n"
           "                        they do not fit; a budget below one layer plus one sample is refused\n"
           "                        up front with the figure (exit 2). The artifact does not depend on it.\n"
           "  --layers A-B          write only decoder layers A..B (A = 0 also takes the embeddings,\n"
           "                        final norm and lm_head): one part of a partitioned run; assemble\n"
           "                        the parts with qforge merge (docs/scaling.md)\n"
           "  --device NAME         where calibration's big float products run (XᵀX sums, Linear\n"
           "                        products, GPTQ's Cholesky): auto (default: the GPU when this is a\n"
           "                        CUDA build and one is found, else the CPU), cpu, or gpu (exit 5\n"
           "                        when none can be used). Same method either way; the GPU sums in\n"
           "                        another order, so the two artifacts differ in a few roundings.\n"
           "  --force               replace OUT_DIR when it is an earlier qforge output or empty (never\n"
           "                        another folder, the input, or a folder that holds the input)\n"
           "  --sign KEY.pem        sign the artifact (OUT_DIR/model.sig, OpenSSF model-signing; qforge sign --help)\n"
           "  --stats               also print the input read rate and the calibration's memory plan\n"
           "  --json                one JSON object on stdout instead of text\n"
           "  -q, --quiet           no progress bar\n\n"
           "The output is built in OUT_DIR.qforge-tmp and renamed at the end: a failed run leaves no\n"
           "OUT_DIR. After an interruption (Ctrl-C, kill) or a full disk the temporary folder is kept:\n"
           "run the same command again to resume after the last completed shard. Exit codes: docs/cli.md.\n\n"
           "example:\n"
           "  qforge convert tests/data/tiny-llama -o /tmp/tiny-w4 --scheme w4a16\n");
}

/* Set by SIGINT/SIGTERM; the pipeline polls it (qf_ctx.cancel) between tensors and layers. */
static volatile int qf_cancel;

static void qf_on_signal(int sig)
{
    (void)sig;
    qf_cancel = 1;
}

/* "5G", "512M", "1.5T", "8Gi", "4096", with an optional trailing B: K M G T are powers of
 * 1000 (as shard sizes are counted), Ki Mi Gi Ti powers of 1024. */
static int qf_parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0) return -1;
    const char *units = "KMGT", *u = *end ? strchr(units, *end & ~0x20) : NULL;
    if (u) {
        end++;
        int binary = *end == 'i';
        end += binary;
        for (const char *k = units; k <= u; k++) v *= binary ? 1024.0 : 1000.0;
    }
    if (*end == 'B') end++;
    if (*end || v >= 1.8e19) return -1;
    *out = (uint64_t)v;
    return 0;
}

/* The summary line of a --target-bits choice: achieved bits, and how many Linears took each format. */
static void qf_print_mixed(const char *text)
{
    json_t *m = json_loads(text, 0, NULL);
    if (!m) return;
    printf("mixed precision: %.4f bits per weight (target %g) over %.0f weights, %.1f MB:",
           json_real_value(json_object_get(m, "bits_per_weight")), json_real_value(json_object_get(m, "target_bits")),
           (double)json_integer_value(json_object_get(m, "weights")),
           (double)json_integer_value(json_object_get(m, "bytes")) / 1e6);
    json_t *menu = json_object_get(m, "menu"), *counts = json_object_get(m, "counts"), *f;
    size_t i;
    json_array_foreach(menu, i, f) printf("%s %lld %s", i ? "," : "",
                                          (long long)json_integer_value(json_object_get(counts, json_string_value(f))),
                                          json_string_value(f));
    printf(" (per Linear: qforge.manifest.json \"mixed_precision\", or --json)\n");
    if (json_is_integer(json_object_get(m, "target_size")))
        printf("mixed precision: tensors %.0f bytes for --target-size %.0f\n",
               (double)json_integer_value(json_object_get(m, "tensor_bytes")),
               (double)json_integer_value(json_object_get(m, "target_size")));
    json_decref(m);
}

int qf_cmd_convert(int argc, char **argv)
{
    qf_convert_opts o;
    qf_convert_opts_default(&o);
    qf_ctx ctx = {.cancel = &qf_cancel};
    const int env_dev = qf_device_mode_parse(getenv("QF_DEVICE")); /* --device overrides it */
    if (env_dev >= 0) ctx.device = env_dev;
    o.ctx = &ctx;
    int json = 0, stats = 0, quiet = 0;
    const char *scheme = NULL, *layout = NULL, *to = NULL, *sign_key = NULL;
    qf_error err = {0};
    qf_status num = QF_OK; /* a numeric option's parse */
    for (int i = 1; i < argc && num == QF_OK; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (qf_cli_is_help(a)) {
            qf_convert_help();
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && v) o.out = v, i++;
        else if (!strcmp(a, "--scheme") && v) scheme = v, i++;
        else if (!strcmp(a, "--method") && v) o.method = v, i++;
        else if (!strcmp(a, "--layout") && v) layout = v, i++;
        else if (!strcmp(a, "--to") && v) to = v, i++;
        else if (!strcmp(a, "--ignore") && v) {
            if (o.n_ignore == QF_MAX_IGNORE) {
                qf_fail(&err, QF_ERR_USAGE, "at most %d --ignore patterns", QF_MAX_IGNORE);
                return qf_cli_report_error("convert", &err, json);
            }
            o.ignore[o.n_ignore++] = v, i++;
        } else if (!strcmp(a, "--max-shard-size") && v) {
            if (qf_parse_size(v, &o.max_shard_bytes)) {
                qf_fail(&err, QF_ERR_USAGE, "--max-shard-size '%s' is not a size (e.g. 2G)", v);
                return qf_cli_report_error("convert", &err, json);
            }
            i++;
        } else if (!strcmp(a, "--max-memory") && v) {
            if (qf_parse_size(v, &ctx.max_memory)) {
                qf_fail(&err, QF_ERR_USAGE, "--max-memory '%s' is not a size (e.g. 8G, 512M, 16Gi)", v);
                return qf_cli_report_error("convert", &err, json);
            }
            i++;
        } else if (!strcmp(a, "--layers") && v) {
            char *end;
            o.layer_first = (int)strtol(v, &end, 10);
            o.layer_last = *end == '-' ? (int)strtol(end + 1, &end, 10) : o.layer_first;
            if (*end || o.layer_first < 0 || o.layer_last < o.layer_first) {
                qf_fail(&err, QF_ERR_USAGE, "--layers '%s' is not a range A-B of decoder layers", v);
                return qf_cli_report_error("convert", &err, json);
            }
            i++;
        } else if (!strcmp(a, "--calib") && v) o.calib.calib_path = v, i++;
        else if (!strcmp(a, "--calib-samples") && v) num = qf_cli_int(a, v, &o.calib.n_samples, &err), i++;
        else if (!strcmp(a, "--calib-seqlen") && v) num = qf_cli_int(a, v, &o.calib.seqlen, &err), i++;
        else if (!strcmp(a, "--seed") && v) num = qf_cli_u64(a, v, &o.calib.seed, &err), i++;
        else if (!strcmp(a, "--act-order")) o.calib.gptq.act_order = 1;
        else if (!strcmp(a, "--static-groups")) o.calib.gptq.static_groups = 1;
        else if (!strcmp(a, "--damp") && v) num = qf_cli_float(a, v, &o.calib.gptq.percdamp, &err), i++;
        else if (!strcmp(a, "--block") && v) num = qf_cli_int(a, v, &o.calib.gptq.block_size, &err), i++;
        else if (!strcmp(a, "--clip-search") && v) {
            num = qf_cli_int(a, v, &o.calib.gptq.clip_search, &err), i++;
            o.rtn_clip_search = o.calib.gptq.clip_search;
        }
        else if (!strcmp(a, "--refit") && v) num = qf_cli_int(a, v, &o.calib.gptq.refit, &err), i++;
        else if (!strcmp(a, "--descent") && v) num = qf_cli_int(a, v, &o.calib.gptq.descent, &err), i++;
        else if (!strcmp(a, "--calib-target") && v) {
            if (strcmp(v, "float") && strcmp(v, "quantized")) {
                qf_fail(&err, QF_ERR_USAGE, "--calib-target '%s': expected float or quantized", v);
                return qf_cli_report_error("convert", &err, json);
            }
            o.calib.float_target = !strcmp(v, "float");
            i++;
        }
        else if (!strcmp(a, "--moe-floor") && v) {
            char *end;
            o.calib.moe_floor = !strcmp(v, "all") ? -1.0f : strtof(v, &end);
            if (strcmp(v, "all") && (*end || end == v || !(o.calib.moe_floor >= 0) || !isfinite(o.calib.moe_floor))) {
                qf_fail(&err, QF_ERR_USAGE, "--moe-floor '%s' is not a number >= 0 or 'all'", v);
                return qf_cli_report_error("convert", &err, json);
            }
            i++;
        }
        else if (!strcmp(a, "--smoothquant") && v) num = qf_cli_float(a, v, &o.calib.smooth_alpha, &err), i++;
        else if (!strcmp(a, "--rotate") && v) {
            const int k = qf_rotate_kind_from_name(v);
            if (k < 0) {
                qf_fail(&err, QF_ERR_USAGE, "--rotate '%s': expected hadamard, orthogonal or none", v);
                return qf_cli_report_error("convert", &err, json);
            }
            o.calib.rotate = (qf_rotate_kind)k;
            i++;
        }
        else if (!strcmp(a, "--rotate-block") && v) num = qf_cli_int(a, v, &o.calib.rotate_block, &err), i++;
        else if (!strcmp(a, "--rotate-seed") && v) {
            char *end;
            errno = 0;
            o.calib.rotate_seed = strtoull(v, &end, 10);
            if (*end || end == v || errno || v[0] == '-') {
                qf_fail(&err, QF_ERR_USAGE, "--rotate-seed '%s' is not a number >= 0", v);
                return qf_cli_report_error("convert", &err, json);
            }
            i++;
        }
        else if (!strcmp(a, "--threads") && v) num = qf_cli_int(a, v, &ctx.threads, &err), i++;
        else if (!strcmp(a, "--target-bits") && v) {
            num = qf_cli_float(a, v, &o.target_bits, &err), i++;
            if (num == QF_OK && !(o.target_bits > 0 && o.target_bits <= 32)) {
                qf_fail(&err, QF_ERR_USAGE, "--target-bits '%s' is not a number of bits per weight in (0, 32]", v);
                return qf_cli_report_error("convert", &err, json);
            }
        }
        else if (!strcmp(a, "--target-size") && v) {
            if (qf_parse_size(v, &o.target_size)) {
                qf_fail(&err, QF_ERR_USAGE, "--target-size '%s' is not a size (e.g. 18M, 4.5G)", v);
                return qf_cli_report_error("convert", &err, json);
            }
            i++;
        }
        else if (!strcmp(a, "--target-samples") && v) num = qf_cli_int(a, v, &o.sens_samples, &err), i++;
        else if (!strcmp(a, "--force")) o.force = 1;
        else if (!strcmp(a, "--sign") && v) sign_key = v, i++;
        else if (!strcmp(a, "--stats")) stats = 1;
        else if (!strcmp(a, "--device") && v) {
            const int d = qf_device_mode_parse(v);
            if (d < 0) {
                qf_fail(&err, QF_ERR_USAGE, "--device '%s': expected auto, cpu or gpu", v);
                return qf_cli_report_error("convert", &err, json);
            }
            ctx.device = d;
            i++;
        }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] == '-') {
            qf_fail(&err, QF_ERR_USAGE, "unknown option '%s' (qforge convert --help)", a);
            return qf_cli_report_error("convert", &err, json);
        } else if (!o.src) o.src = a;
        else {
            qf_fail(&err, QF_ERR_USAGE, "unexpected argument '%s'", a);
            return qf_cli_report_error("convert", &err, json);
        }
    }
    if (num) return qf_cli_report_error("convert", &err, json);
    /* --layout / --to pick the writer (convert_output.h); --to safetensors quantizes nothing */
    if ((layout && qf_layout_parse(layout, &o.layout)) || (to && strcmp(to, "safetensors") != 0)) {
        qf_fail(&err, QF_ERR_USAGE, "unknown %s '%s' (--layout compressed-tensors|modelopt|gguf, --to safetensors)",
                to ? "--to" : "--layout", to ? to : layout);
        return qf_cli_report_error("convert", &err, json);
    }
    if (to) o.layout = QF_LAYOUT_SAFETENSORS;
    if (o.target_bits > 0 && o.target_size) {
        qf_fail(&err, QF_ERR_USAGE, "--target-bits and --target-size are two ways to set one budget: give one");
        return qf_cli_report_error("convert", &err, json);
    }
    const int mixed = o.target_bits > 0 || o.target_size;
    if (mixed) { /* mixed precision: the menu's base scheme, compressed-tensors only */
        if (o.layout != QF_LAYOUT_COMPRESSED_TENSORS) {
            qf_fail(&err, QF_ERR_UNSUPPORTED, "--target-bits / --target-size write compressed-tensors config groups: not with %s",
                    to ? "--to safetensors" : o.layout == QF_LAYOUT_GGUF ? "--layout gguf" : "--layout modelopt");
            return qf_cli_report_error("convert", &err, json);
        }
        if (scheme && strcmp(scheme, "w4a16-asym") != 0) {
            qf_fail(&err, QF_ERR_USAGE, "--target-bits chooses the formats (w4a16-asym, w4a16, nvfp4a16, w8a8, bf16): drop "
                                        "--scheme %s", scheme);
            return qf_cli_report_error("convert", &err, json);
        }
        if (o.sens_samples < 0) {
            qf_fail(&err, QF_ERR_USAGE, "--target-samples must be > 0");
            return qf_cli_report_error("convert", &err, json);
        }
        scheme = "w4a16-asym";
    }
    int own_writer = o.layout == QF_LAYOUT_SAFETENSORS || o.layout == QF_LAYOUT_GGUF; /* no CT scheme */
    if (o.layout == QF_LAYOUT_SAFETENSORS && scheme) {
        qf_fail(&err, QF_ERR_USAGE, "--to safetensors writes the weights unquantized: drop --scheme");
        return qf_cli_report_error("convert", &err, json);
    }
    if (!o.src || !o.out || (!scheme && o.layout != QF_LAYOUT_SAFETENSORS)) {
        qf_fail(&err, QF_ERR_USAGE, "need MODEL_DIR, -o OUT_DIR and --scheme (qforge convert --help)");
        return qf_cli_report_error("convert", &err, json);
    }
    if (own_writer && o.calib.rotate != QF_ROTATE_NONE) {
        qf_fail(&err, QF_ERR_USAGE, "--rotate writes a calibrated compressed-tensors artifact: drop --layout gguf / --to");
        return qf_cli_report_error("convert", &err, json);
    }
    if (o.layout == QF_LAYOUT_GGUF) o.gguf_type = scheme; /* a llama.cpp file type: q4_k_m, q4_0, q4_k, ... */
    if (!own_writer) o.scheme = qf_scheme_find(scheme);
    if (!o.scheme && !own_writer) {
        qf_fail(&err, QF_ERR_USAGE, "unknown scheme '%s' (known: %s)", scheme, qf_scheme_names());
        return qf_cli_report_error("convert", &err, json);
    }
    if (qf_convert_set_method(&o, o.method, &err) != QF_OK) { /* sets o.calibrated too (qforge.h) */
        qf_fail(&err, QF_ERR_USAGE, "unknown --method '%s' (rtn, gptq, awq, awq-gptq; imatrix with --layout gguf)",
                o.method);
        return qf_cli_report_error("convert", &err, json);
    }
    if (o.calib.n_samples <= 0 || o.calib.seqlen < 2 || o.calib.gptq.block_size <= 0 || o.calib.gptq.percdamp < 0 ||
        o.calib.gptq.clip_search < 0 || o.calib.gptq.clip_search > 1000 || o.calib.gptq.refit < 0 ||
        o.calib.gptq.refit > 100 || o.calib.gptq.descent < 0 || o.calib.gptq.descent > 100 ||
        o.calib.smooth_alpha < 0 || o.calib.smooth_alpha > 1 || o.calib.rotate_block < 0) {
        qf_fail(&err, QF_ERR_USAGE, "calibration options out of range (samples > 0, seqlen >= 2, block > 0, damp >= 0, "
                                    "0 <= clip-search <= 1000, 0 <= refit <= 100, 0 <= descent <= 100, 0 <= smoothquant <= 1, rotate-block >= 0)");
        return qf_cli_report_error("convert", &err, json);
    }
    if (o.layout == QF_LAYOUT_MODELOPT) { /* the scheme must have a ModelOpt form (qf_modelopt.h) */
        qf_quant_plan probe;
        if (qf_modelopt_plan(o.scheme, QF_DTYPE_BF16, 256, 256, &probe, &err) != QF_OK)
            return qf_cli_report_error("convert", &err, json);
        if (o.calibrated) {
            qf_fail(&err, QF_ERR_UNSUPPORTED, "--layout modelopt writes round-to-nearest conversions only for now; calibrated "
                                              "ones are written in the compressed-tensors layout");
            return qf_cli_report_error("convert", &err, json);
        }
    }
    if (sign_key) { /* a key that will be refused is refused before the conversion, not after */
        qf_sign_key *k = NULL;
        if (qf_sign_key_load_private(sign_key, &k, &err) != QF_OK) return qf_cli_report_error("convert", &err, json);
        qf_sign_key_free(k);
    }
    qf_cli_bar bar = {.enabled = !quiet && !json, .lines = !quiet && !json, .unit = "B"};
    ctx.progress = qf_cli_progress;
    ctx.user = &bar;
    signal(SIGINT, qf_on_signal);
    signal(SIGTERM, qf_on_signal);
    qf_convert_stats st;
    if (o.layout == QF_LAYOUT_SAFETENSORS) o.method = "passthrough";
    qf_status rs = o.layout == QF_LAYOUT_SAFETENSORS ? qf_convert_passthrough(&o, &st, &err)
                   : o.layout == QF_LAYOUT_GGUF      ? qf_convert_gguf(&o, &st, &err)
                                                     : qf_convert_run(&o, &st, &err);
    /* signing reads the files back (from the page cache, mostly): the manifest's digests are
     * not trusted for this, so what is signed is what is on disk */
    if (rs == QF_OK && sign_key) rs = qf_sign_dir(o.out, sign_key, NULL, NULL, &err);
    if (rs != QF_OK) return qf_cli_report_error("convert", &err, json);
    const char *sname = mixed ? "mixed" : o.scheme ? o.scheme->name : o.gguf_type ? o.gguf_type : "none";
    double gbps = st.seconds_weights > 0 ? (double)st.bytes_in / st.seconds_weights / 1e9 : 0;
    const qf_calib_memory *cm = &st.calib_memory;
    if (json) {
        json_t *r = json_pack("{s:b, s:s, s:s, s:s, s:i, s:i, s:i, s:I, s:I, s:f, s:f, s:f, s:I}", "ok", 1, "out", o.out,
                              "scheme", sname, "method", o.method, "quantized", st.n_quantized, "kept",
                              st.n_kept, "shards", st.n_shards, "bytes_in", (json_int_t)st.bytes_in, "bytes_out",
                              (json_int_t)st.bytes_out, "seconds", st.seconds, "seconds_weights",
                              st.seconds_weights, "input_gb_per_s", gbps, "peak_rss_kb", (json_int_t)st.peak_rss_kb);
        if (st.bits_per_weight > 0) json_object_set_new(r, "bits_per_weight", json_real(st.bits_per_weight));
        if (cm->chunk_samples) /* budgets above 2^63 (unknown host memory) are reported as -1 */
            json_object_set_new(r, "calibration_memory",
                                json_pack("{s:I, s:I, s:I, s:i, s:i, s:I}", "budget",
                                          (json_int_t)(cm->budget > INT64_MAX ? -1 : (int64_t)cm->budget), "minimum",
                                          (json_int_t)cm->minimum, "planned", (json_int_t)cm->planned, "chunk_samples",
                                          cm->chunk_samples, "chunks", cm->n_chunks, "spilled_bytes",
                                          (json_int_t)cm->spilled_bytes));
        if (st.source.kind != QF_QSOURCE_NONE)
            json_object_set_new(r, "source_format", json_pack("{s:s, s:s, s:i, s:i}", "format",
                                                              qf_qsource_name(st.source.kind), "from", st.source.origin,
                                                              "dequantized", st.source.n_quantized, "companions_dropped",
                                                              st.source.n_dropped));
        if (st.mixed_json) json_object_set_new(r, "mixed_precision", json_loads(st.mixed_json, 0, NULL));
        if (st.n_dense_experts) { /* the scheme would quantize them: never left unsaid */
            json_t *d = json_array();
            for (int i = 0; i < st.n_dense_experts; i++) json_array_append_new(d, json_string(st.dense_experts[i]));
            json_object_set_new(r, "dense_experts", d);
        }
        qf_convert_stats_free(&st);
        char *s = json_dumps(r, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(r);
        return 0;
    }
    printf("%s: %d Linear weights quantized to %s, %d tensors kept, %d shard(s), %.1f MB -> %.1f MB in %.2f s, "
           "peak memory %.0f MB\n",
           o.out, st.n_quantized, sname, st.n_kept, st.n_shards, st.bytes_in / 1e6, st.bytes_out / 1e6, st.seconds,
           st.peak_rss_kb * 1024.0 / 1e6);
    if (st.source.kind != QF_QSOURCE_NONE)
        printf("source: %s (%s): %d tensor(s) dequantized to bf16 on read, %d scale tensor(s) dropped\n",
               qf_qsource_name(st.source.kind), st.source.origin, st.source.n_quantized, st.source.n_dropped);
    if (st.bits_per_weight > 0) printf("%s: %.3f bits per weight (tensor data, as llama.cpp counts it)\n", o.out, st.bits_per_weight);
    if (st.mixed_json) qf_print_mixed(st.mixed_json);
    if (st.n_dense_experts) /* a warning, on stderr: the one thing in this summary a user must not miss */
        fprintf(stderr, "qforge convert: warning: %d fused expert tensor(s) kept in full precision%s, not %s (%s%s): "
                "transformers loads this family's experts only fused; listed in quantization_config.ignore, "
                "the manifest and README.md\n",
                st.n_dense_experts, st.source.kind == QF_QSOURCE_MXFP4 ? " (bf16, dequantized from the source's MXFP4)" : "",
                sname, st.dense_experts[0], st.n_dense_experts > 1 ? ", ..." : "");
    qf_convert_stats_free(&st);
    if (stats) {
        printf("stats: input %.3f GB/s (weights stage %.2f s), peak resident memory %.1f MB\n", gbps,
               st.seconds_weights, st.peak_rss_kb * 1024.0 / 1e6);
        if (cm->chunk_samples)
            printf("stats: calibration planned %.1f MB (minimum %.1f MB), %d chunk(s) of %d sample(s), %.1f MB spilled "
                   "to disk\n",
                   cm->planned / 1e6, cm->minimum / 1e6, cm->n_chunks, cm->chunk_samples, cm->spilled_bytes / 1e6);
    }
    return 0;
}
