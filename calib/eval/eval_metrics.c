/* eval_metrics.c - ppl-512 windows, log-softmax, NLL, KLD, top-1, quantiles (see qf_eval.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qf_eval.h"

int64_t qf_eval_window_count(int64_t n_tokens, int ctx, int64_t chunks)
{
    if (ctx <= 0 || n_tokens < ctx) return 0;
    int64_t w = n_tokens / ctx;
    return chunks > 0 && chunks < w ? chunks : w;
}

qf_status qf_eval_init(qf_eval *ev, int ctx, int64_t vocab, int64_t max_windows, int with_quant, qf_error *err)
{
    memset(ev, 0, sizeof *ev);
    if (ctx < 2) return qf_fail(err, QF_ERR_USAGE, "context length %d: at least 2 tokens are needed", ctx);
    if (vocab < 1) return qf_fail(err, QF_ERR_USAGE, "vocabulary size %lld is not positive", (long long)vocab);
    ev->ctx = ctx;
    ev->vocab = vocab;
    ev->with_quant = with_quant != 0;
    ev->base_arg = malloc((size_t)ctx * sizeof(int64_t));
    if (!ev->base_arg) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    if (with_quant) {
        ev->kld_cap = max_windows * (ctx - 1);
        ev->kld = malloc((size_t)(ev->kld_cap > 0 ? ev->kld_cap : 1) * sizeof(double));
        if (!ev->kld) return qf_fail(err, QF_ERR_NOMEM, "out of memory for %lld KLD values", (long long)ev->kld_cap);
    }
    return QF_OK;
}

void qf_eval_free(qf_eval *ev)
{
    if (!ev) return;
    free(ev->kld);
    free(ev->base_arg);
    memset(ev, 0, sizeof *ev);
}

/* ---- row kernels -------------------------------------------------------------------------- */
/* Maximum of x[v] and the first index holding it. */
static float qf_row_max_arg(const float *x, int64_t v, int64_t *arg)
{
    float m = -INFINITY;
    int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= v; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, vm);
    for (int j = 0; j < 8; j++) m = lanes[j] > m ? lanes[j] : m;
#endif
    for (; i < v; i++) m = x[i] > m ? x[i] : m;
    i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 target = _mm256_set1_ps(m);
    for (; i + 8 <= v; i += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), target, _CMP_EQ_OQ));
        if (mask) {
            *arg = i + __builtin_ctz((unsigned)mask);
            return m;
        }
    }
#endif
    for (; i < v; i++)
        if (x[i] == m) break;
    *arg = i < v ? i : 0;
    return m;
}

/* Log-softmax in place; returns the log-sum-exp, *arg = argmax. */
static double qf_log_softmax_arg(float *x, int64_t v, int64_t *arg)
{
    float mx = qf_row_max_arg(x, v, arg);
    double sum = 0.0;
    int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 sh = _mm256_set1_ps(mx);
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    for (; i + 8 <= v; i += 8) {
        __m256 e = qf_fast_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(acc0, acc1));
    sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
#endif
    for (; i < v; i++) sum += qf_fast_expf(x[i] - mx);
    double lse = (double)mx + log(sum);
    for (i = 0; i < v; i++) x[i] = (float)((double)x[i] - lse);
    return lse;
}

double qf_log_softmax(float *x, int64_t v)
{
    int64_t arg;
    return qf_log_softmax_arg(x, v, &arg);
}

double qf_kld_row(const float *logp, const float *logq, int64_t v)
{
    double kl = 0.0;
    int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    for (; i + 8 <= v; i += 8) {
        __m256 lp = _mm256_loadu_ps(logp + i), lq = _mm256_loadu_ps(logq + i);
        __m256 t = _mm256_mul_ps(qf_fast_exp8(lp), _mm256_sub_ps(lp, lq));
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(t)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(t, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(acc0, acc1));
    kl = lanes[0] + lanes[1] + lanes[2] + lanes[3];
#endif
    for (; i < v; i++) kl += (double)(qf_fast_expf(logp[i]) * (logp[i] - logq[i]));
    return kl;
}

/* ---- windows ------------------------------------------------------------------------------ */
void qf_eval_add_base(qf_eval *ev, const int32_t *ids, float *logits)
{
    const int64_t V = ev->vocab, npos = ev->ctx - 1;
    double nll = 0.0;
    int64_t *arg = ev->base_arg;
#pragma omp parallel for schedule(static) reduction(+ : nll)
    for (int64_t i = 0; i < npos; i++) {
        float *row = logits + i * V;
        qf_log_softmax_arg(row, V, &arg[i]);
        nll -= (double)row[ids[i + 1]];
    }
    ev->base_nll += nll;
    if (!ev->with_quant) ev->scored += npos;
    ev->windows += !ev->with_quant;
}

void qf_eval_add_quant(qf_eval *ev, const int32_t *ids, const float *base_logprobs, float *quant_logits)
{
    const int64_t V = ev->vocab, npos = ev->ctx - 1, at = ev->scored;
    double nll = 0.0, kl = 0.0;
    int64_t same = 0;
    const int64_t *base_arg = ev->base_arg;
#pragma omp parallel for schedule(static) reduction(+ : nll, kl, same)
    for (int64_t i = 0; i < npos; i++) {
        float *q = quant_logits + i * V;
        const float *p = base_logprobs + i * V;
        int64_t qa;
        qf_log_softmax_arg(q, V, &qa);
        nll -= (double)q[ids[i + 1]];
        double d = qf_kld_row(p, q, V);
        if (at + i < ev->kld_cap) ev->kld[at + i] = d;
        kl += d;
        same += base_arg[i] == qa;
    }
    ev->quant_nll += nll;
    ev->kld_sum += kl;
    ev->top1_same += same;
    ev->scored += npos;
    ev->windows++;
}

static int qf_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double qf_quantile_sorted(const double *sorted, int64_t n, double q)
{
    if (n <= 0) return NAN;
    double pos = q * (double)(n - 1);
    int64_t lo = (int64_t)floor(pos);
    if (lo >= n - 1) return sorted[n - 1];
    double frac = pos - (double)lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

qf_status qf_eval_finish(const qf_eval *ev, qf_eval_result *r, qf_error *err)
{
    memset(r, 0, sizeof *r);
    if (ev->scored <= 0) return qf_fail(err, QF_ERR_USAGE, "no token was scored");
    double n = (double)ev->scored;
    r->scored_tokens = ev->scored;
    r->windows = ev->windows;
    r->ppl = exp(ev->base_nll / n);
    if (!ev->with_quant) return QF_OK;
    r->quant_ppl = exp(ev->quant_nll / n);
    r->ppl_drift_pct = 100.0 * (r->quant_ppl / r->ppl - 1.0);
    r->mean_kld = ev->kld_sum / n;
    r->top1_agreement = (double)ev->top1_same / n;
    int64_t nk = ev->scored < ev->kld_cap ? ev->scored : ev->kld_cap;
    double *s = malloc((size_t)(nk > 0 ? nk : 1) * sizeof(double));
    if (!s) return qf_fail(err, QF_ERR_NOMEM, "out of memory sorting %lld KLD values", (long long)nk);
    memcpy(s, ev->kld, (size_t)nk * sizeof(double));
    qsort(s, (size_t)nk, sizeof(double), qf_cmp_double);
    r->p99_kld = qf_quantile_sorted(s, nk, 0.99);
    free(s);
    return QF_OK;
}
