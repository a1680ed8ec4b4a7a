/* convert_plan.c - decide what is quantized and lay out the output shards (see convert_plan.h). */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_plan.h"
#include "mixed.h"
#include "qf_modelopt.h"

/* Default ignore list: modules that stay in full precision whatever the scheme. */
static int qf_default_ignored(const char *module)
{
    static const char *const needles[] = {"lm_head", "embed_tokens", "wte", "wpe", "norm", "embedding"};
    for (size_t i = 0; i < sizeof needles / sizeof *needles; i++)
        if (strstr(module, needles[i])) return 1;
    /* the output head under other top-level names: DeepSeek-V4 "head", GGUF-style "output" */
    if (strcmp(module, "head") == 0 || strcmp(module, "output") == 0) return 1;
    /* MoE routers: mixtral block_sparse_moe.gate, qwen-moe mlp.gate, shared_expert_gate, gpt-oss router */
    size_t l = strlen(module);
    if (l >= 5 && strcmp(module + l - 5, ".gate") == 0) return 1;
    if (strstr(module, "shared_expert_gate") || strstr(module, ".router")) return 1;
    return 0;
}

static int qf_is_linear_like(const qf_tensor *t)
{
    size_t l = strlen(t->name);
    return l > 7 && strcmp(t->name + l - 7, ".weight") == 0 && t->ndim == 2 && qf_dtype_is_float(t->dtype);
}

/* Key that fused siblings share: module name with its last component generalised. */
void qf_plan_sibling_key(const char *module, char *key, size_t len)
{
    static const char *const fused[][2] = {{"q_proj", "qkv"}, {"k_proj", "qkv"}, {"v_proj", "qkv"},
                                           {"gate_proj", "gate_up"}, {"up_proj", "gate_up"},
                                           {"w1", "w13"}, {"w3", "w13"}};
    const char *last = strrchr(module, '.');
    last = last ? last + 1 : module;
    for (size_t i = 0; i < sizeof fused / sizeof *fused; i++)
        if (strcmp(last, fused[i][0]) == 0) {
            snprintf(key, len, "%.*s%s", (int)(last - module), module, fused[i][1]);
            return;
        }
    snprintf(key, len, "%s", module);
}

void qf_shard_name(int shard, int n_shards, char *buf, size_t len)
{
    if (n_shards == 1) snprintf(buf, len, "model.safetensors");
    else snprintf(buf, len, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

typedef struct {
    char key[512];
    int index, wanted;
} qf_sib;

static int qf_sib_cmp(const void *a, const void *b)
{
    const qf_sib *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->index - y->index;
}

static int qf_out_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_out_tensor *)a)->name, ((const qf_out_tensor *)b)->name);
}

void qf_plan_free(qf_convert_plan *p)
{
    for (int i = 0; i < p->n_out; i++) free(p->out[i].name), free(p->out[i].cal_data);
    free(p->out);
    for (int i = 0; i < p->n_mods; i++) free(p->mods[i].module);
    free(p->mods);
    free(p->src_mod);
    for (int i = 0; i < p->n_ignored; i++) free(p->ignored_modules[i]);
    free(p->ignored_modules);
    for (int i = 0; i < p->n_dense_experts; i++) free(p->dense_experts[i]);
    free(p->dense_experts);
    memset(p, 0, sizeof *p);
}

/* Decoder layer of a tensor name ("model.layers.12.mlp..." -> 12), -1 for the rest. */
int qf_tensor_layer(const char *name)
{
    const char *l = strstr(name, "layers.");
    if (!l || (l != name && l[-1] != '.')) return -1;
    l += 7;
    if (*l < '0' || *l > '9') return -1;
    return atoi(l);
}

/* Shard packing unit: a module's tensors stay together ("a.b.q_proj.weight_scale" -> "a.b.q_proj"). */
static int qf_same_unit(const char *a, const char *b)
{
    const char *da = strrchr(a, '.'), *db = strrchr(b, '.');
    size_t la = da ? (size_t)(da - a) : strlen(a), lb = db ? (size_t)(db - b) : strlen(b);
    return la == lb && memcmp(a, b, la) == 0;
}

static int qf_in_slice(const qf_convert_opts *o, const char *name)
{
    if (o->layer_first < 0) return 1;
    int l = qf_tensor_layer(name);
    return l < 0 ? o->layer_first == 0 : l >= o->layer_first && l <= o->layer_last;
}

/* Grow *arr (elements of size sz) so that index n fits; 0 on success. */
static int qf_grow(void **arr, int *cap, int n, size_t sz)
{
    if (n < *cap) return 0;
    int c = *cap ? *cap * 2 : 64;
    while (c <= n) c *= 2;
    void *q = realloc(*arr, (size_t)c * sz);
    if (!q) return -1;
    memset((char *)q + (size_t)*cap * sz, 0, (size_t)(c - *cap) * sz);
    *arr = q, *cap = c;
    return 0;
}

typedef struct qf_plan_builder {
    const qf_convert_opts *o;
    const qf_checkpoint *ck;
    regex_t *re;
    qf_convert_plan *p;
    int cap_out, cap_mods, cap_ignored, cap_dense;
} qf_plan_builder;

static qf_status qf_nomem(qf_error *err, const char *what)
{
    return qf_fail(err, QF_ERR_NOMEM, "out of memory planning %s", what);
}

static qf_status qf_add_ignored(qf_plan_builder *b, const char *module, qf_error *err)
{
    qf_convert_plan *p = b->p;
    if (p->n_ignored && strcmp(p->ignored_modules[p->n_ignored - 1], module) == 0) return QF_OK; /* a layer's pair */
    if (qf_grow((void **)&p->ignored_modules, &b->cap_ignored, p->n_ignored + 1, sizeof(char *)) != 0)
        return qf_nomem(err, module);
    p->ignored_modules[p->n_ignored++] = strdup(module);
    return QF_OK;
}

static qf_out_tensor *qf_add_out(qf_plan_builder *b)
{
    if (qf_grow((void **)&b->p->out, &b->cap_out, b->p->n_out, sizeof *b->p->out) != 0) return NULL;
    return &b->p->out[b->p->n_out++];
}

/* One Linear-like module (module owned from here on), a 2-D weight or an expert's slice: decide
 * whether it is quantized and list its output tensors. */
static qf_status qf_add_module(qf_plan_builder *b, int src, char *module, const qf_expert_slice *slice, qf_error *err)
{
    const qf_convert_opts *o = b->o;
    const qf_tensor *t = &b->ck->tensors[src];
    qf_convert_plan *p = b->p;
    if (qf_grow((void **)&p->mods, &b->cap_mods, p->n_mods, sizeof *p->mods) != 0) {
        free(module);
        return qf_nomem(err, t->name);
    }
    const int mi = p->n_mods++;
    qf_module_plan *m = &p->mods[mi];
    m->module = module;
    m->src = src;
    m->sliced = slice != NULL;
    if (slice) m->slice = *slice;
    const int64_t rows = slice ? slice->rows : t->shape[0], cols = slice ? slice->cols : t->shape[1];
    int ignored = qf_default_ignored(m->module);
    for (int k = 0; k < o->n_ignore && !ignored; k++) ignored = regexec(&b->re[k], m->module, 0, NULL, 0) == 0;
    m->scheme = o->scheme;
    if (!ignored && !qf_scheme_fits(o->scheme, rows, cols)) ignored = 1;
    if (!ignored && o->mixed && qf_mixed_find(o->mixed, m->module, &m->scheme) && !m->scheme)
        ignored = 1; /* mixed precision keeps it as it is */
    int is_embedding = strstr(m->module, "embed") || strstr(m->module, "wte") || strstr(m->module, "wpe");
    if (ignored && !is_embedding && !strstr(m->module, "norm")) QF_TRY(qf_add_ignored(b, m->module, err));
    qf_status st = QF_OK;
    if (!ignored) {
        m->quantized = 1;
        st = qf_quant_plan_linear(m->scheme, rows, cols, &m->plan, err);
        m->out_plan = m->plan; /* --layout modelopt: the same codes under ModelOpt's tensors */
        if (st == QF_OK && o->layout == QF_LAYOUT_MODELOPT)
            st = qf_modelopt_plan(m->scheme, t->dtype, rows, cols, &m->out_plan, err);
        if (st) return st;
    }
    if (!m->quantized) { /* dense: the tensor as it is, or the expert's slice as a 2-D weight */
        qf_out_tensor *ot = qf_add_out(b);
        if (!ot) return qf_nomem(err, t->name);
        size_t len = strlen(m->module) + 8;
        ot->name = malloc(len);
        snprintf(ot->name, len, "%s.weight", m->module);
        ot->dtype = t->dtype;
        ot->ndim = 2;
        ot->shape[0] = rows;
        ot->shape[1] = cols;
        ot->nbytes = slice ? (uint64_t)rows * (uint64_t)cols * (uint64_t)(qf_dtype_bits(t->dtype) / 8) : t->nbytes;
        ot->src = src;
        ot->mod = slice ? mi : -1; /* a whole tensor is written straight from the mapping */
        ot->plan_index = -1;
        return QF_OK;
    }
    for (int k = 0; k < m->out_plan.n; k++) {
        const qf_packed_tensor *pt = &m->out_plan.t[k];
        qf_out_tensor *ot = qf_add_out(b);
        if (!ot) return qf_nomem(err, t->name);
        m = &p->mods[mi];
        size_t len = strlen(m->module) + strlen(pt->suffix) + 2;
        ot->name = malloc(len);
        snprintf(ot->name, len, "%s.%s", m->module, pt->suffix);
        ot->dtype = pt->dtype;
        ot->ndim = pt->ndim;
        ot->shape[0] = pt->shape[0];
        ot->shape[1] = pt->shape[1];
        ot->nbytes = pt->nbytes;
        ot->src = src;
        ot->mod = mi;
        ot->plan_index = k;
    }
    return QF_OK;
}

/* What a family's fused 3-D experts become (convert_plan.h). */
typedef enum { QF_FUSED_REFUSE = 0, QF_FUSED_UNFUSE, QF_FUSED_KEEP } qf_fused_rule;

static qf_fused_rule qf_fused_rule_of(const char *model_type, qf_fused_layout *layout)
{
    *layout = QF_FUSED_HALVES;
    if (strcmp(model_type, "llama4") == 0 || strcmp(model_type, "llama4_text") == 0) return QF_FUSED_UNFUSE;
    if (strcmp(model_type, "gpt_oss") == 0) {
        *layout = QF_FUSED_INTERLEAVED;
        return QF_FUSED_KEEP;
    }
    return QF_FUSED_REFUSE;
}

/* Source tensor i is a fused expert tensor: plan its per-expert modules, or keep it (*kept = 1)
 * and list it. */
static qf_status qf_add_fused(qf_plan_builder *b, int i, qf_fused_kind kind, const char *model_type, int *kept,
                              qf_error *err)
{
    const qf_checkpoint *ck = b->ck;
    const qf_tensor *t = &ck->tensors[i];
    const qf_convert_opts *o = b->o;
    const size_t plen = qf_fused_module_len(t->name); /* "<prefix>.experts" */
    qf_fused_layout layout;
    qf_fused_rule rule = qf_fused_rule_of(model_type, &layout);
    if (rule == QF_FUSED_REFUSE)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s': fused 3-D expert tensors of model_type '%s' are not "
                       "supported (known: llama4, llama4_text unfused per expert; gpt_oss kept dense)", ck->dir, t->name,
                       model_type);
    *kept = rule == QF_FUSED_KEEP;
    if (rule == QF_FUSED_KEEP) {
        char *module = strndup(t->name, plen);
        qf_status st = module ? qf_add_ignored(b, module, err) : qf_nomem(err, t->name);
        free(module);
        qf_convert_plan *p = b->p;
        if (st == QF_OK && qf_grow((void **)&p->dense_experts, &b->cap_dense, p->n_dense_experts, sizeof(char *)) != 0)
            st = qf_nomem(err, t->name);
        if (st == QF_OK) p->dense_experts[p->n_dense_experts++] = strdup(t->name);
        return st;
    }
    /* unfuse: the pair must agree before any of it is planned */
    char *sib = malloc(plen + 16);
    if (!sib) return qf_nomem(err, t->name);
    snprintf(sib, plen + 16, "%.*s.%s", (int)plen, t->name, kind == QF_FUSED_GATE_UP ? "down_proj" : "gate_up_proj");
    const qf_tensor *other = qf_checkpoint_find(ck, sib);
    free(sib);
    QF_TRY(qf_fused_experts_check(ck->dir, kind == QF_FUSED_GATE_UP ? t : other, kind == QF_FUSED_DOWN ? t : other, err));
    if (o->calibrated || o->layout == QF_LAYOUT_MODELOPT)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s': fused 3-D experts are unfused for RTN into "
                       "compressed-tensors only, not for %s", ck->dir, t->name,
                       o->calibrated ? "calibrated methods" : "--layout modelopt");
    static const char *const names[] = {"gate_proj", "up_proj", "down_proj"};
    for (int e = 0; e < t->shape[0]; e++)
        for (int part = kind == QF_FUSED_DOWN ? QF_EXPERT_DOWN : QF_EXPERT_GATE;
             part <= (kind == QF_FUSED_DOWN ? QF_EXPERT_DOWN : QF_EXPERT_UP); part++) {
            size_t len = plen + 32;
            char *module = malloc(len);
            if (!module) return qf_nomem(err, t->name);
            snprintf(module, len, "%.*s.%d.%s", (int)plen, t->name, e, names[part]);
            qf_expert_slice s = qf_expert_slice_of(t, e, (qf_expert_part)part, layout);
            QF_TRY(qf_add_module(b, i, module, &s, err));
        }
    return QF_OK;
}

static qf_status qf_plan_sources(qf_plan_builder *b, const char *model_type, qf_error *err)
{
    const qf_checkpoint *ck = b->ck;
    qf_convert_plan *p = b->p;
    for (int i = 0; i < ck->n_tensors; i++) {
        const qf_tensor *t = &ck->tensors[i];
        p->src_mod[i] = -1;
        if (b->o->n_parts) { /* merge: everything is already packed */
        } else if (qf_is_linear_like(t)) {
            char *module = strndup(t->name, strlen(t->name) - 7);
            if (!module) return qf_nomem(err, t->name);
            p->src_mod[i] = p->n_mods;
            QF_TRY(qf_add_module(b, i, module, NULL, err));
            continue;
        } else {
            qf_fused_kind kind = qf_fused_kind_of(t->name);
            int kept = 1;
            if (kind != QF_FUSED_NOT) QF_TRY(qf_add_fused(b, i, kind, model_type, &kept, err));
            if (!kept) continue; /* unfused: its slices are its outputs */
        }
        qf_out_tensor *ot = qf_add_out(b);
        if (!ot) return qf_nomem(err, t->name);
        ot->name = strdup(t->name);
        ot->dtype = t->dtype;
        ot->ndim = t->ndim;
        memcpy(ot->shape, t->shape, sizeof ot->shape);
        ot->nbytes = t->nbytes;
        ot->src = i;
        ot->mod = -1;
        ot->plan_index = -1;
    }
    return QF_OK;
}

qf_status qf_plan_build(const qf_convert_opts *o, const qf_checkpoint *ck, const char *model_type, qf_convert_plan *p,
                        qf_error *err)
{
    memset(p, 0, sizeof *p);
    regex_t re[QF_MAX_IGNORE];
    for (int i = 0; i < o->n_ignore; i++)
        if (regcomp(&re[i], o->ignore[i], REG_EXTENDED | REG_NOSUB) != 0) {
            for (int k = 0; k < i; k++) regfree(&re[k]);
            return qf_fail(err, QF_ERR_USAGE, "--ignore '%s' is not a valid extended regular expression", o->ignore[i]);
        }
    qf_plan_builder b = {o, ck, re, p, 0, 0, 0, 0};
    qf_status st = QF_OK;
    p->src_mod = calloc((size_t)ck->n_tensors + 1, sizeof *p->src_mod);
    if (!p->src_mod) st = qf_nomem(err, ck->dir);
    if (st == QF_OK) st = qf_plan_sources(&b, model_type ? model_type : "", err);
    for (int i = 0; i < o->n_ignore; i++) regfree(&re[i]);
    if (st) return st;
    /* room for lm_head below */
    if (qf_grow((void **)&p->ignored_modules, &b.cap_ignored, p->n_ignored + 1, sizeof(char *)) != 0)
        return qf_nomem(err, "lm_head");
    /* lm_head is always dense.  A tied-embedding checkpoint (Llama 3.2 1B, Qwen2.5 small) has
     * no lm_head tensor, yet transformers and vLLM build an lm_head Linear that the "Linear"
     * target would take as quantized unless ignore names it. */
    int has_lm_head = 0;
    for (int i = 0; i < p->n_ignored; i++) has_lm_head |= strstr(p->ignored_modules[i], "lm_head") != NULL;
    if (!has_lm_head && !o->n_parts) p->ignored_modules[p->n_ignored++] = strdup("lm_head");
    if (p->n_out == 0) return qf_fail(err, QF_ERR_FORMAT, "%s: checkpoint has no tensors", ck->dir);
    qsort(p->out, (size_t)p->n_out, sizeof *p->out, qf_out_cmp);
    /* --layers: keep this slice only (the decisions above were made on the whole model) */
    int kept = 0;
    for (int i = 0; i < p->n_out; i++) {
        if (qf_in_slice(o, p->out[i].name)) p->out[kept++] = p->out[i];
        else free(p->out[i].name);
    }
    p->n_out = kept;
    if (p->n_out == 0) return qf_fail(err, QF_ERR_USAGE, "--layers %d-%d selects no tensor", o->layer_first, o->layer_last);

    /* nvfp4: fused siblings share one global scale, from the max of their amaxes (only the
     * groups this slice writes are measured; each tensor's pages are dropped afterwards) */
    int any_global = 0;
    for (int i = 0; i < p->n_mods; i++) any_global |= p->mods[i].quantized && p->mods[i].scheme->has_global_scale;
    if (any_global) {
        int n = p->n_mods;
        qf_sib *sib = calloc((size_t)n + 1, sizeof *sib);
        if (!sib) return qf_nomem(err, "nvfp4 global scales");
        int ns = 0;
        for (int i = 0; i < n; i++)
            if (p->mods[i].quantized && p->mods[i].scheme->has_global_scale) {
                qf_plan_sibling_key(p->mods[i].module, sib[ns].key, sizeof sib[ns].key);
                sib[ns].index = i;
                sib[ns].wanted = qf_in_slice(o, p->mods[i].module);
                ns++;
            }
        qsort(sib, (size_t)ns, sizeof *sib, qf_sib_cmp);
        for (int a0 = 0, a1; a0 < ns; a0 = a1) {
            int wanted = 0;
            for (a1 = a0; a1 < ns && strcmp(sib[a1].key, sib[a0].key) == 0; a1++) wanted |= sib[a1].wanted;
            if (!wanted) continue;
            float g = 0;
            for (int k = a0; k < a1; k++) {
                const qf_module_plan *mp = &p->mods[sib[k].index];
                const qf_tensor *src = &ck->tensors[mp->src];
                qf_status as = qf_checkpoint_acquire(ck, src, err); /* a dequantized source tensor: decoded now */
                if (as) {
                    free(sib);
                    return as;
                }
                /* an expert's slice: its whole block, gate and up together (their union) */
                const qf_tensor t = mp->sliced ? qf_expert_block(src, mp->slice.expert) : *src;
                float m = qf_tensor_absmax(t.dtype, t.data, qf_tensor_numel(&t));
                qf_checkpoint_release(ck, mp->sliced ? &t : src); /* a view: pages; decoded: kept for its siblings */
                if (m > g) g = m;
            }
            for (int k = a0; k < a1; k++) /* decoded tensors of sliced experts: freed once the group is measured */
                if (ck->tensors[p->mods[sib[k].index].src].decode) qf_checkpoint_release(ck, &ck->tensors[p->mods[sib[k].index].src]);
            for (int k = a0; k < a1; k++) p->mods[sib[k].index].group_amax = g;
        }
        free(sib);
    }

    /* shards: greedy in name order, a module's packed tensors never split across shards */
    uint64_t limit = o->max_shard_bytes ? o->max_shard_bytes : QF_DEFAULT_SHARD_BYTES, cur = 0;
    int shard = 0;
    for (int i = 0; i < p->n_out; i++) {
        int starts_unit = i == 0 || !qf_same_unit(p->out[i - 1].name, p->out[i].name);
        if (starts_unit && cur > 0 && cur + p->out[i].nbytes > limit) {
            shard++;
            cur = 0;
        }
        p->out[i].shard = shard;
        cur += p->out[i].nbytes;
    }
    p->n_shards = shard + 1;
    return QF_OK;
}

qf_out_tensor *qf_plan_find(const qf_convert_plan *p, const char *name)
{
    qf_out_tensor key = {.name = (char *)name};
    return bsearch(&key, p->out, (size_t)p->n_out, sizeof *p->out, qf_out_cmp);
}

int qf_plan_quantizes(void *ctx, const char *module)
{
    const qf_plan_ctx *c = ctx;
    size_t l = strlen(module);
    char *name = malloc(l + 8);
    memcpy(name, module, l);
    memcpy(name + l, ".weight", 8);
    const qf_tensor *t = qf_checkpoint_find(c->ck, name);
    free(name);
    if (!t) return 0;
    int mi = c->plan->src_mod[t - c->ck->tensors];
    return mi >= 0 && c->plan->mods[mi].quantized;
}

const qf_scheme *qf_plan_module_scheme(void *ctx, const char *module)
{
    const qf_plan_ctx *c = ctx;
    size_t l = strlen(module);
    char *name = malloc(l + 8);
    if (!name) return NULL;
    memcpy(name, module, l);
    memcpy(name + l, ".weight", 8);
    const qf_tensor *t = qf_checkpoint_find(c->ck, name);
    free(name);
    if (!t) return NULL;
    int mi = c->plan->src_mod[t - c->ck->tensors];
    return mi >= 0 && c->plan->mods[mi].quantized ? c->plan->mods[mi].scheme : NULL;
}
