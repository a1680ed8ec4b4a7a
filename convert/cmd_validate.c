/* cmd_validate.c - `qforge validate`: perplexity of a base model and the drift of a
 * quantized artifact against it (KLD, top-1), under the ppl-512 protocol (docs/validate.md).
 *
 * Story: parse options -> qf_validate (the library: models, text, windows, metrics;
 * qf_validate.h) -> print -> record into the artifact's manifest -> thresholds decide the
 * exit code.
 */
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_cli.h"
#include "qf_eval.h"
#include "qf_fs.h"
#include "qf_gpu_calib.h"
#include "qf_hash.h"
#include "qf_manifest.h"
#include "qf_model_card.h"
#include "qf_model.h"
#include "qf_validate.h"


typedef struct qf_validate_cli {
    const char *base, *quant, *text;
    int ctx;
    long long chunks;
    double max_kld, max_drift; /* < 0: not set */
    int act_quant, record, json, threads, quiet;
} qf_validate_cli;

static void qf_validate_help(void)
{
    printf("usage: qforge validate --base MODEL_DIR [--quant ARTIFACT_DIR] --text FILE [--ctx 512]\n"
           "                       [--chunks N] [--max-kld X] [--max-ppl-drift PCT] [--act-quant on|off]\n"
           "                       [--record] [--json] [--threads N] [--device auto|cpu|gpu] [-q]\n\n"
           "Perplexity of MODEL_DIR on FILE under the ppl-512 protocol (tokenize the whole text with\n"
           "MODEL_DIR/tokenizer.json, no BOS; consecutive windows of --ctx tokens, tail dropped; each\n"
           "window scored on its own: tokens 1..ctx-1).  With --quant, the artifact runs through the same\n"
           "CPU runner (packed weights dequantized tile by tile, activation quantization emulated unless\n"
           "--act-quant off) and its drift is measured: PPL drift %%, mean and p99 KL(base||quant), top-1\n"
           "agreement.  --chunks N uses the first N windows.  --record stores the numbers in\n"
           "ARTIFACT_DIR/qforge.manifest.json (re-sealed).  Exit 0, or 7 when --max-kld (mean KLD) or\n"
           "--max-ppl-drift (percent) is exceeded, or 12 when a metric is NaN/Inf (a broken model never\n"
           "passes).  docs/validate.md has the formulas.\n"
           "--device: where the runner's big products go (auto: the GPU of a CUDA build when one is\n"
           "found; the fixtures' products are too small and stay on the CPU); cpu; gpu (exit 5 without).\n\n"
           "example:\n"
           "  qforge validate --base tests/data/tiny-llama --text tests/data/eval.txt\n"
           "  qforge validate --base tests/data/tiny-llama --quant /tmp/tl-w4 --text tests/data/eval.txt \\\n"
           "                  --chunks 32 --max-kld 0.1\n");
}

static int qf_parse_num(const char *s, double *out)
{
    char *end;
    *out = strtod(s, &end);
    return *s && !*end;
}

static qf_status qf_validate_args(int argc, char **argv, qf_validate_cli *o, int *help, qf_error *err)
{
    memset(o, 0, sizeof *o);
    o->ctx = 512;
    o->max_kld = o->max_drift = -1;
    o->act_quant = 1;
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double num;
        if (qf_cli_is_help(a)) {
            *help = 1;
            return QF_OK;
        } else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--record")) o->record = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) o->quiet = 1;
        else if (!v) return qf_fail(err, QF_ERR_USAGE, "unexpected argument '%s' (qforge validate --help)", a);
        else if (!strcmp(a, "--base")) o->base = argv[++i];
        else if (!strcmp(a, "--quant")) o->quant = argv[++i];
        else if (!strcmp(a, "--text")) o->text = argv[++i];
        else if (!strcmp(a, "--device")) {
            const int d = qf_device_mode_parse(argv[++i]);
            if (d < 0) return qf_fail(err, QF_ERR_USAGE, "--device '%s': expected auto, cpu or gpu", v);
            qf_gpu_calib_set_mode((qf_device_mode)d);
        } else if (!strcmp(a, "--act-quant")) {
            if (strcmp(v, "on") && strcmp(v, "off"))
                return qf_fail(err, QF_ERR_USAGE, "--act-quant takes on or off, not '%s'", v);
            o->act_quant = !strcmp(argv[++i], "on");
        } else if (!qf_parse_num(v, &num)) {
            return qf_fail(err, QF_ERR_USAGE, "%s needs a number, not '%s'", a, v);
        } else if (!strcmp(a, "--ctx") && num >= 2 && num <= 1 << 20 && num == (int)num) o->ctx = (int)num, i++;
        else if (!strcmp(a, "--chunks") && num >= 1 && num == (long long)num) o->chunks = (long long)num, i++;
        else if (!strcmp(a, "--threads") && num >= 1 && num <= 4096 && num == (int)num) o->threads = (int)num, i++;
        else if (!strcmp(a, "--max-kld") && num >= 0) o->max_kld = num, i++;
        else if (!strcmp(a, "--max-ppl-drift") && num >= 0) o->max_drift = num, i++;
        else return qf_fail(err, QF_ERR_USAGE, "bad option or value: %s %s (qforge validate --help)", a, v);
    }
    if (!o->base || !o->text) return qf_fail(err, QF_ERR_USAGE, "need --base MODEL_DIR and --text FILE (qforge validate --help)");
    if (!o->quant && (o->record || o->max_kld >= 0 || o->max_drift >= 0))
        return qf_fail(err, QF_ERR_USAGE, "--record, --max-kld and --max-ppl-drift need --quant ARTIFACT_DIR");
    return qf_gpu_calib_require(err);
}

/* A metric as JSON: its value, or null when it is NaN/Inf (JSON has neither), with its name
 * added to "nonfinite" so a script never mistakes a missing key for a pass. */
static void qf_json_metric(json_t *j, const char *key, double v)
{
    if (isfinite(v)) {
        json_object_set_new(j, key, json_real(v));
        return;
    }
    json_object_set_new(j, key, json_null());
    json_t *bad = json_object_get(j, "nonfinite");
    if (!bad) json_object_set_new(j, "nonfinite", bad = json_array());
    json_array_append_new(bad, json_string(key));
}

/* Names of the non-finite metrics, comma separated, into buf; 0 when all are finite. */
static int qf_nonfinite_metrics(const qf_eval_result *r, int has_quant, char *buf, size_t cap)
{
    const struct {
        const char *name;
        double v;
    } m[] = {{"base PPL", r->ppl},          {"quant PPL", r->quant_ppl}, {"PPL drift", r->ppl_drift_pct},
             {"mean KLD", r->mean_kld},     {"p99 KLD", r->p99_kld},     {"top-1 agreement", r->top1_agreement}};
    int n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < (has_quant ? sizeof m / sizeof *m : 1); i++)
        if (!isfinite(m[i].v)) {
            size_t l = strlen(buf);
            snprintf(buf + l, cap - l, "%s%s", n++ ? ", " : "", m[i].name);
        }
    return n;
}

static json_t *qf_validate_json(const qf_validate_cli *o, const qf_eval_result *r, double tps, int64_t windows)
{
    json_t *j = json_object();
    json_object_set_new(j, "protocol", json_string("ppl-512"));
    json_object_set_new(j, "text", json_string(qf_path_base(o->text)));
    json_object_set_new(j, "ctx", json_integer(o->ctx));
    json_object_set_new(j, "chunks", json_integer((json_int_t)windows));
    json_object_set_new(j, "windows", json_integer((json_int_t)r->windows));
    json_object_set_new(j, "scored_tokens", json_integer((json_int_t)r->scored_tokens));
    qf_json_metric(j, "ppl", r->ppl);
    if (o->quant) {
        qf_json_metric(j, "quant_ppl", r->quant_ppl);
        qf_json_metric(j, "ppl_drift_pct", r->ppl_drift_pct);
        qf_json_metric(j, "mean_kld", r->mean_kld);
        qf_json_metric(j, "p99_kld", r->p99_kld);
        qf_json_metric(j, "top1_agreement", r->top1_agreement);
        json_object_set_new(j, "act_quant", json_string(o->act_quant ? "on" : "off"));
    }
    if (tps > 0) json_object_set_new(j, "tokens_per_s", json_real(tps));
    return j;
}

static int qf_validate_run(const qf_validate_cli *o, qf_error *err)
{
    json_t *out = NULL;
    int rc = 0;
    qf_cli_bar bar = {.enabled = !o->quiet && !o->json, .lines = !o->quiet && !o->json, .unit = "tok"};
    qf_ctx ctx = {.threads = o->threads, .progress = qf_cli_progress, .user = &bar};
    qf_validate_opts vo = {o->base, o->quant, o->text, o->ctx, o->chunks, o->act_quant, &ctx};
    qf_validate_result res;
    qf_status st = qf_validate(&vo, &res, err);
    if (st) goto done;
    const qf_eval_result r = res.r;
    const qf_hash128 text_hash = res.text_hash;
    const int64_t windows = res.windows;
    const double secs = res.seconds, tps = res.tokens_per_s;
    const int quant = o->quant != NULL;
    /* 4. report */
    /* Fail closed: NaN compares false with every threshold, so a NaN drift would pass them. */
    char bad[128];
    int nonfinite = qf_nonfinite_metrics(&r, quant, bad, sizeof bad);
    int over_kld = o->max_kld >= 0 && !(r.mean_kld <= o->max_kld);
    int over_drift = o->max_drift >= 0 && !(r.ppl_drift_pct <= o->max_drift);
    int verdict = nonfinite ? QF_ERR_NONFINITE : over_kld || over_drift ? QF_ERR_THRESHOLD : 0;
    out = qf_validate_json(o, &r, tps, windows);
    if (o->json) {
        json_t *j = json_deep_copy(out);
        json_object_set_new(j, "ok", json_boolean(verdict == 0));
        json_object_set_new(j, "base", json_string(o->base));
        if (o->quant) json_object_set_new(j, "quant", json_string(o->quant));
        json_object_set_new(j, "seconds", json_real(secs));
        json_object_set_new(j, "threads", json_integer(res.threads));
        if (o->max_kld >= 0) json_object_set_new(j, "max_kld", json_real(o->max_kld));
        if (o->max_drift >= 0) json_object_set_new(j, "max_ppl_drift", json_real(o->max_drift));
        json_object_set_new(j, "exit_code", json_integer(verdict));
        if (nonfinite) json_object_set_new(j, "error", json_sprintf("not finite: %s", bad));
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("base PPL         %.4f   (%s)\n", r.ppl, o->base);
        if (quant) {
            printf("quant PPL        %.4f   (%s)\n", r.quant_ppl, o->quant);
            printf("PPL drift        %+.3f %%\n", r.ppl_drift_pct);
            printf("mean KLD         %.5f\n", r.mean_kld);
            printf("p99 KLD          %.5f\n", r.p99_kld);
            printf("top-1 agreement  %.2f %%\n", 100.0 * r.top1_agreement);
        }
        printf("scored tokens    %lld   (%lld windows x %d, ppl-512 protocol)\n", (long long)r.scored_tokens,
               (long long)r.windows, o->ctx);
        printf("throughput       %.1f tokens/s   (%s, %.1f s, %d threads)\n", tps, quant ? "base + quant" : "base",
               secs, res.threads);
    }
    /* 5. record, then thresholds */
    if (o->record) {
        char hex[QF_HASH_HEX_LEN + 1];
        qf_hash_hex(text_hash, hex);
        json_t *rec = json_deep_copy(out);
        json_object_del(rec, "tokens_per_s"); /* machine-dependent: not part of the record */
        json_object_set_new(rec, "text_xxh3_128", json_string(hex));
        json_object_set_new(rec, "base", json_string(qf_path_base(o->base)));
        if (o->max_kld >= 0) json_object_set_new(rec, "max_kld", json_real(o->max_kld));
        if (o->max_drift >= 0) json_object_set_new(rec, "max_ppl_drift", json_real(o->max_drift));
        json_object_set_new(rec, "passed", json_boolean(verdict == 0));
        st = qf_manifest_update(o->quant, "validation", rec, err);
        if (!st) st = qf_model_card_refresh(o->quant, err); /* README.md's validation table, re-sealed */
        if (st) goto done;
        if (!o->quiet && !o->json)
            fprintf(stderr, "qforge validate: recorded in %s/%s\n", o->quant, QF_MANIFEST_NAME);
    }
    if (over_kld)
        fprintf(stderr, "qforge validate: mean KLD %.5f exceeds --max-kld %g\n", r.mean_kld, o->max_kld);
    if (over_drift)
        fprintf(stderr, "qforge validate: PPL drift %.3f %% exceeds --max-ppl-drift %g\n", r.ppl_drift_pct, o->max_drift);
    if (nonfinite)
        fprintf(stderr, "qforge validate: %s not finite (NaN or Inf): the model's output is broken; no threshold "
                "passes\n", bad);
    rc = verdict;
done:
    if (st) rc = qf_cli_report_error("validate", err, o->json);
    json_decref(out);
    return rc;
}

int qf_cmd_validate(int argc, char **argv)
{
    qf_validate_cli o;
    qf_error err = {0};
    int help = 0, json = 0;
    for (int i = 1; i < argc; i++) json |= !strcmp(argv[i], "--json");
    if (qf_validate_args(argc, argv, &o, &help, &err)) return qf_cli_report_error("validate", &err, json);
    if (help) {
        qf_validate_help();
        return 0;
    }
    return qf_validate_run(&o, &err);
}
