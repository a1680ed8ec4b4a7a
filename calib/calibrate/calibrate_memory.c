/* calibrate_memory.c - the memory plan of a calibration run (see calibrate_internal.h).
 *
 * What is resident while decoder layer l is calibrated, in bytes (T = seqlen):
 *   base       what the process holds before the first layer (binary and libraries, the
 *              model's tables, the calibration ids), measured, + slack for threads and heap
 *   layer      the layer's Linears as float32 copies (4 B per weight; the source pages are
 *              dropped once copied) + the packed tensors the layer writes; the float
 *              target keeps a second float32 copy (the float model's twin)
 *   quant      one input's statistics, 8 cols² + 2 KiB·cols (XᵀX in float64 and its 512-row
 *              float32 buffer), + the quantizer's working set: GPTQ 12 cols² + 10 rows·cols
 *              (H in float64 while its float32 inverse factor is made, codes, copies of W;
 *              the scale refit adds 4 cols² + 12 rows·cols), RTN / AWQ clip 12 rows·cols +
 *              64 MiB; phase 1 of AWQ / SmoothQuant holds the four inputs' statistics at once
 *              + 8 cols² for the scale search; the float target adds the cross product
 *              (8 cols² + 2 KiB·cols) and, where it is larger than the quantizer's, its
 *              solve (qf_float_target_bytes)
 *   attention  one sample's packed keys and values, and each thread's score rows
 *   tables     HIDDEN n_tok·hidden, ATTN n_tok·heads·head_dim, MLP n_tok·intermediate,
 *              FLOAT n_tok·hidden (float target) floats (qf_act_store.h), each in RAM or
 *              spilled to a file
 *   chunk      tokens · per_token: xn and tmp (hidden), q (heads·head_dim), k and v
 *              (kv_heads·head_dim), g and u (widest FFN), a read buffer per spilled table
 *              (hidden or heads·head_dim; the MLP table reads into g), MoE routing buffers,
 *              the float path's xf (hidden), attf (heads·head_dim), gf and uf (widest FFN)
 * minimum = base + layer + quant + attention + T·per_token with every table spilled: one
 * layer's weights and one sample's activations.  Tables go to RAM in the order HIDDEN, ATTN,
 * MLP, FLOAT (how often a pass touches them) while a one-sample chunk still fits beside them; a
 * chunk is then as many whole samples as fit, at most QF_CAL_CHUNK_TOKENS tokens: beyond
 * that the products gain nothing and the memory is better left to the page cache (with a GPU:
 * QF_CAL_CHUNK_TOKENS_GPU).  None of this changes the artifact made on the CPU
 * (calibrate_layer.c says why); cuBLAS may pick another summation order for another chunk
 * size, so on the GPU the budget can move a few roundings.
 */
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "calibrate_internal.h"
#include "qf_float_target.h"
#include "qf_gpu_calib.h"
#include "qf_sysmem.h"

#define QF_CAL_CHUNK_TOKENS 8192
/* With the GPU doing the products, bigger chunks amortise each weight's transfer (a chunk's
 * product moves the whole weight over PCIe) and the CPU caches no longer matter. */
#define QF_CAL_CHUNK_TOKENS_GPU 65536
#define QF_MIB (1ull << 20)

static uint64_t qf_stats_bytes(int64_t cols)
{
    return 8ull * (uint64_t)(cols * cols) + 4ull * QF_STATS_CHUNK * (uint64_t)cols + 28ull * (uint64_t)cols;
}

/* GPTQ: H in float64 while its inverse factor (float32) is made, codes, group parameters,
 * the permuted copy (act_order), the caller's copy of W and packed output; the scale refit
 * adds H in float32 and two more copies of W, the code descent a copy of W and two float64
 * rows x cols tables (and its pair table).  RTN / AWQ: copies of W, the clip search's
 * blocks. */
static uint64_t qf_quantizer_bytes(const qf_calib_opts *o, int64_t rows, int64_t cols)
{
    const uint64_t c2 = (uint64_t)(cols * cols), rc = (uint64_t)(rows * cols);
    if (o->method != QF_CALIB_GPTQ && o->method != QF_CALIB_AWQ_GPTQ) return 12 * rc + 64 * QF_MIB;
    /* refit and descent run one at a time: the larger of the two workspaces */
    const uint64_t refit = o->gptq.refit > 0 ? 4 * c2 + 12 * rc : 0;
    const uint64_t descent = o->gptq.descent > 0 ? 4 * rc + 16 * rc + 64 * (uint64_t)cols : 0;
    return 12 * c2 + 10 * rc + (refit > descent ? refit : descent);
}

static int qf_plan_wanted(const qf_calib_opts *o, const qf_linear *lin)
{
    return !o->quantize_module || o->quantize_module(o->ctx, lin->name);
}

/* Float copies + packed output of the layer's Linears (and the pages of the ones read in
 * place, the shared expert). */
static uint64_t qf_plan_layer_bytes(const qf_model *m, const qf_calib_opts *o, const qf_layer *L)
{
    const qf_linear *lin[16 + 3 * 256];
    int n = 0;
    lin[n++] = &L->q, lin[n++] = &L->k, lin[n++] = &L->v, lin[n++] = &L->o;
    if (L->in_a.kind) lin[n++] = &L->in_a;
    lin[n++] = &L->q_a, lin[n++] = &L->kv_a, lin[n++] = &L->kv_b; /* MLA (empty elsewhere: 0 bytes) */
    lin[n++] = &L->idx_wq_b, lin[n++] = &L->idx_wk, lin[n++] = &L->idx_wproj;
    if (!L->is_moe) lin[n++] = &L->gate, lin[n++] = &L->up, lin[n++] = &L->down;
    else {
        lin[n++] = &L->router;
        for (int e = 0; e < 3 * m->cfg.n_experts && n < (int)(sizeof lin / sizeof *lin); e++) lin[n++] = &L->experts[e];
    }
    uint64_t b = 0;
    const uint64_t copies = qf_calib_float_path(o) ? 8 : 4; /* the float twin */
    for (int i = 0; i < n; i++) {
        b += (lin[i] == &L->router ? 4 : copies) * (uint64_t)(lin[i]->rows * lin[i]->cols);
        qf_quant_plan p;
        const qf_scheme *ms = o->module_scheme && lin[i] != &L->router ? o->module_scheme(o->ctx, lin[i]->name) : NULL;
        if (lin[i] != &L->router && qf_plan_wanted(o, lin[i]) &&
            qf_quant_plan_linear(ms ? ms : o->scheme, lin[i]->rows, lin[i]->cols, &p, NULL) == QF_OK)
            for (int k = 0; k < p.n; k++) b += p.t[k].nbytes;
    }
    if (L->has_shared) {
        const qf_linear *sh[4] = {&L->sh_gate, &L->sh_up, &L->sh_down, &L->sh_router};
        for (int i = 0; i < 4; i++) b += 4ull * (uint64_t)(sh[i]->rows * sh[i]->cols);
    }
    return b;
}

/* The statistics + quantizer peak of the layer (phase 2; phase 1 too when scales are folded). */
static uint64_t qf_plan_quant_bytes(const qf_model *m, const qf_calib_opts *o, const qf_layer *L)
{
    const int64_t C = m->cfg.hidden_size;
    const int fold = o->method == QF_CALIB_AWQ || o->method == QF_CALIB_AWQ_GPTQ || o->smooth_alpha > 0;
    const qf_linear *gate = L->is_moe ? &L->experts[0] : &L->gate, *down = L->is_moe ? &L->experts[2] : &L->down;
    int64_t cols[4] = {C, L->o.cols, C, down->cols};
    int64_t rows[4] = {L->q.rows > L->k.rows ? L->q.rows : L->k.rows, L->o.rows, gate->rows, down->rows};
    uint64_t peak = 0, sum = 0, search = 0;
    const int fp = qf_calib_float_path(o);
    for (int g = 0; g < 4; g++) {
        const uint64_t c2 = (uint64_t)(cols[g] * cols[g]);
        const uint64_t q = qf_quantizer_bytes(o, rows[g], cols[g]);
        uint64_t b = qf_stats_bytes(cols[g]) + q;
        if (fp) { /* the cross product, and the float target's solve (before GPTQ, not beside it) */
            const int64_t shared = L->is_moe && o->moe_floor < 0 ? m->cfg.n_experts : 1;
            int64_t group[4][3] = {{L->q.rows, L->k.rows, L->v.rows}, {L->o.rows}, {gate->rows, gate->rows}, {down->rows}};
            const int ng[4] = {3, 1, 2, 1};
            group[2][0] = group[2][1] = gate->rows * shared; /* every expert's w1 / w3 together */
            const uint64_t solve = qf_float_target_bytes(group[g], ng[g], cols[g]);
            b += 8 * c2 + 4ull * QF_STATS_CHUNK * (uint64_t)cols[g] + (solve > q ? solve - q : 0);
        }
        peak = b > peak ? b : peak;
        sum += qf_stats_bytes(cols[g]);
        uint64_t s = 8ull * (uint64_t)(cols[g] * cols[g]) + 64 * QF_MIB;
        search = s > search ? s : search;
    }
    return fold && sum + search > peak ? sum + search : peak;
}

static uint64_t qf_round_up(int64_t v, int64_t to) { return (uint64_t)((v + to - 1) / to * to); }

/* A requirement, rounded up (so that passing the printed figure as the budget is enough). */
static const char *qf_need_format(uint64_t bytes, char *buf, size_t n)
{
    if (bytes >= 1000000000ull) snprintf(buf, n, "%.2f GB", (double)((bytes + 9999999) / 10000000) / 100);
    else snprintf(buf, n, "%llu MB", (unsigned long long)((bytes + 999999) / 1000000));
    return buf;
}

qf_status qf_cal_plan_make(const qf_model *m, const qf_calib_opts *o, int last, uint64_t base, const char *spill_dir,
                           qf_cal_plan *p, qf_error *err)
{
    memset(p, 0, sizeof *p);
    const qf_model_config *cf = &m->cfg;
    const int64_t C = cf->hidden_size, qd = m->mixer_width,
                  kvd = (int64_t)cf->n_kv_heads * cf->head_dim, T = o->seqlen, n_tok = (int64_t)o->n_samples * T;
    const int nth = omp_get_max_threads();
    int any_moe = 0;
    int64_t f_dense = 0, mamba_tok = 0; /* a Mamba mixer's own buffers: in_proj's output, xBC, dt (< 2 rows of it) */
    for (int l = 0; l <= last; l++) {
        const qf_layer *L = &m->layers[l];
        uint64_t lb = qf_plan_layer_bytes(m, o, L), qb = qf_plan_quant_bytes(m, o, L);
        p->layer = lb > p->layer ? lb : p->layer;
        p->quant = qb > p->quant ? qb : p->quant;
        any_moe |= L->is_moe;
        if (!L->is_moe && L->gate.rows > f_dense) f_dense = L->gate.rows;
        if (!L->gate.kind && L->up.rows > f_dense) f_dense = L->up.rows; /* nemotron_h's ungated MLP */
        if (L->mixer == QF_MIXER_MAMBA && 2 * L->q.rows > mamba_tok) mamba_tok = 2 * L->q.rows;
    }
    p->base = base + 64 * QF_MIB + (uint64_t)nth * 8 * QF_MIB;
    p->attention = 4ull * (uint64_t)cf->n_kv_heads *
                       (qf_round_up(T, 32) * (uint64_t)cf->head_dim + qf_round_up(cf->head_dim, 32) * (uint64_t)T) +
                   4ull * 48 * (uint64_t)T * (uint64_t)nth;
    const int fp = qf_calib_float_path(o);
    p->width[QF_CAL_HIDDEN] = C, p->width[QF_CAL_ATTN] = qd, p->width[QF_CAL_MLP] = f_dense;
    p->width[QF_CAL_FLOAT] = fp ? C : 0;
    for (int i = 0; i < QF_CAL_NSTORES; i++) p->store[i] = 4ull * (uint64_t)(n_tok * p->width[i]);
    const uint64_t tok_fixed = 4ull * (uint64_t)(2 * C + qd + 2 * kvd + 2 * m->ffn_max + mamba_tok) +
                               (any_moe ? 4ull * (uint64_t)cf->n_experts + 20ull * (uint64_t)cf->n_experts_per_tok +
                                              8ull * (uint64_t)C
                                        : 0) +
                               (fp ? 4ull * (uint64_t)(C + qd + 2 * m->ffn_max) : 0);
    const uint64_t read_buf[QF_CAL_NSTORES] = {4ull * (uint64_t)C, 4ull * (uint64_t)qd, 0, fp ? 4ull * (uint64_t)C : 0};
    const uint64_t fixed = p->base + p->layer + p->quant + p->attention;

    p->budget_given = o->max_memory > 0;
    p->budget = o->max_memory ? o->max_memory : qf_mem_default_budget();
    if (!p->budget) p->budget = UINT64_MAX; /* the host's memory is unknown: no limit */
    uint64_t all_spilled = tok_fixed + read_buf[QF_CAL_HIDDEN] + read_buf[QF_CAL_ATTN] + read_buf[QF_CAL_FLOAT];
    p->minimum = fixed + (uint64_t)T * all_spilled;
    if (p->budget < p->minimum) {
        char need[32], have[32], a[32], b[32], c[32], d[32], host[32];
        qf_need_format(p->minimum, need, sizeof need);
        qf_mem_format(p->layer, a, sizeof a);
        qf_mem_format(p->quant, b, sizeof b);
        qf_mem_format((uint64_t)T * all_spilled + p->attention, c, sizeof c);
        qf_mem_format(p->base, d, sizeof d);
        qf_mem_format(p->budget, have, sizeof have);
        if (p->budget_given)
            return qf_fail(err, QF_ERR_USAGE,
                           "--max-memory %s is too small: calibration needs at least %s (one layer's float weights and "
                           "packed output %s, input statistics and the quantizer's working set %s, one sample's "
                           "activations %s, the process so far %s)",
                           have, need, a, b, c, d);
        return qf_fail(err, QF_ERR_NOMEM,
                       "the automatic memory budget %s (3/4 of the host's %s) is too small: calibration needs at least %s "
                       "(one layer's float weights and packed output %s, input statistics and the quantizer's working "
                       "set %s, one sample's activations %s, the process so far %s); pass a larger --max-memory if the "
                       "host can spare it",
                       have, qf_mem_format(qf_mem_host_limit(), host, sizeof host), need, a, b, c, d);
    }

    /* tables into RAM while a one-sample chunk (with the other tables' read buffers) fits */
    uint64_t ram = 0, spilled_buf = read_buf[QF_CAL_HIDDEN] + read_buf[QF_CAL_ATTN] + read_buf[QF_CAL_FLOAT];
    for (int i = 0; i < QF_CAL_NSTORES; i++) {
        if (!p->store[i]) continue;
        if (fixed + ram + p->store[i] + (uint64_t)T * (tok_fixed + spilled_buf - read_buf[i]) <= p->budget) {
            p->in_ram[i] = 1;
            ram += p->store[i];
            spilled_buf -= read_buf[i];
        }
    }
    p->per_token = tok_fixed + spilled_buf;
    const uint64_t per_sample = (uint64_t)T * p->per_token;
    uint64_t fit = (p->budget - fixed - ram) / per_sample;
    const int64_t most = qf_gpu_calib_enabled() ? QF_CAL_CHUNK_TOKENS_GPU : QF_CAL_CHUNK_TOKENS;
    int64_t cap = most / T > 1 ? most / T : 1;
    if ((int64_t)fit < cap) cap = (int64_t)fit;
    p->chunk = cap < 1 ? 1 : cap > o->n_samples ? o->n_samples : (int)cap;
    p->planned = fixed + ram + (uint64_t)p->chunk * per_sample;

    uint64_t spill = 0;
    for (int i = 0; i < QF_CAL_NSTORES; i++) spill += p->in_ram[i] ? 0 : p->store[i];
    struct statvfs vfs;
    if (spill && spill_dir && statvfs(spill_dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < spill) {
        char need[32], have[32], budget[32];
        return qf_fail(err, QF_ERR_IO, "%s: %s of calibration activations do not fit in the memory budget (%s) and "
                                       "only %s are free on this disk to spill them",
                       spill_dir, qf_need_format(spill, need, sizeof need), qf_mem_format(p->budget, budget, sizeof budget),
                       qf_mem_format((uint64_t)vfs.f_bavail * vfs.f_frsize, have, sizeof have));
    }
    return QF_OK;
}
