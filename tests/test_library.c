/* test_library.c - libqforge.a as an engine links it: only the public header (qforge.h), no
 * CLI.  Converts tests/data/tiny-llama with GPTQ (w4a16, a few short calibration windows),
 * verifies the artifact with the library's verify, and checks that progress came through the
 * callback (done increasing within each stage, each stage ended) and that the library printed
 * nothing: stdout and stderr are redirected to a file around the calls and it stays empty.
 * Also: a cancelled job stops with QF_ERR_INTERRUPTED and leaves no destination. */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "qforge.h"

#define MODEL "tests/data/tiny-llama" /* tests run from the repository root */

static char tmp[256];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/qf_test_library.XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* What the callback saw. */
typedef struct {
    int steps, lines, ends, begins, decreasing;
    char stage[64];
    uint64_t last_done;
    int convert_steps, convert_ended, verify_ended, calibrate_lines;
} seen_t;

static void on_progress(void *user, const char *stage, uint64_t done, uint64_t total, const char *message)
{
    seen_t *s = user;
    if (message && strcmp(message, QF_PROGRESS_END) != 0) { /* an information line */
        s->lines++;
        if (!strcmp(stage, "calibrate")) s->calibrate_lines++;
        return;
    }
    if (!message && done == 0) { /* a stage begins */
        s->begins++;
        snprintf(s->stage, sizeof s->stage, "%s", stage);
        s->last_done = 0;
        return;
    }
    if (strcmp(stage, s->stage) != 0 || done < s->last_done || done > total) s->decreasing++;
    s->last_done = done;
    if (message) {
        s->ends++;
        if (!strcmp(stage, "convert")) s->convert_ended = 1;
        if (!strcmp(stage, "verify")) s->verify_ended = 1;
    } else {
        s->steps++;
        if (!strcmp(stage, "convert")) s->convert_steps++;
    }
}

/* stdout and stderr go to path until unsilence */
static int saved_out = -1, saved_err = -1;
static void silence(const char *path)
{
    fflush(stdout), fflush(stderr);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    saved_out = dup(1), saved_err = dup(2);
    dup2(fd, 1), dup2(fd, 2);
    close(fd);
}
static long unsilence(const char *path)
{
    fflush(stdout), fflush(stderr);
    dup2(saved_out, 1), dup2(saved_err, 2);
    close(saved_out), close(saved_err);
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void gptq_opts(qf_convert_opts *o, const qf_ctx *ctx, const char *out)
{
    qf_error err = {0};
    qf_convert_opts_default(o);
    o->src = MODEL;
    o->out = out;
    o->scheme = qf_scheme_find("w4a16");
    assert_non_null(o->scheme);
    assert_int_equal(qf_convert_set_method(o, "gptq", &err), QF_OK);
    assert_true(o->calibrated);
    o->calib.n_samples = 4; /* a few short windows keep it fast; the rules are the default run's */
    o->calib.seqlen = 128;
    o->ctx = ctx;
}

static void test_convert_gptq_silent_with_progress(void **state)
{
    (void)state;
    char out[300], log[300];
    snprintf(out, sizeof out, "%s/tl-w4-gptq", tmp);
    snprintf(log, sizeof log, "%s/printed.txt", tmp);
    seen_t seen = {0};
    qf_ctx ctx = {.threads = 2, .device = QF_CTX_DEVICE_CPU, .progress = on_progress, .user = &seen};
    qf_convert_opts o;
    gptq_opts(&o, &ctx, out);
    qf_convert_stats st;
    qf_error err = {0};
    qf_verify_report rep = {0};

    silence(log);
    qf_status s = qf_convert_run(&o, &st, &err);
    qf_status v = s == QF_OK ? qf_verify_artifact(&ctx, out, &rep, &err) : s;
    long printed = unsilence(log);

    if (s != QF_OK || v != QF_OK) fail_msg("%s", err.msg);
    assert_int_equal(printed, 0); /* the library printed nothing */
    assert_int_equal(st.n_quantized, 42);
    assert_true(st.calib_memory.chunk_samples > 0);
    assert_int_equal(rep.n_issues, 0);
    assert_true(rep.tensors_checked > 0 && rep.tensors_ok == rep.tensors_checked);
    qf_verify_report_free(&rep);

    assert_int_equal(seen.decreasing, 0); /* done only grows within a stage */
    assert_true(seen.begins >= 2);        /* convert, verify */
    assert_true(seen.convert_ended && seen.verify_ended);
    assert_true(seen.calibrate_lines >= 6); /* memory plan, device, one per layer (6) */
    assert_int_equal(seen.ends, 2);
}

static void test_cancelled_job_stops(void **state)
{
    (void)state;
    char out[300], log[300];
    snprintf(out, sizeof out, "%s/cancelled", tmp);
    snprintf(log, sizeof log, "%s/printed2.txt", tmp);
    volatile int cancel = 1; /* as a SIGINT handler would have set it */
    qf_ctx ctx = {.threads = 2, .device = QF_CTX_DEVICE_CPU, .cancel = &cancel};
    qf_convert_opts o;
    gptq_opts(&o, &ctx, out);
    qf_convert_stats st;
    qf_error err = {0};
    silence(log);
    qf_status s = qf_convert_run(&o, &st, &err);
    long printed = unsilence(log);
    assert_int_equal(s, QF_ERR_INTERRUPTED);
    assert_int_equal(printed, 0);
    struct stat sb;
    assert_int_not_equal(stat(out, &sb), 0); /* no destination: only complete output exists */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convert_gptq_silent_with_progress),
        cmocka_unit_test(test_cancelled_job_stops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
