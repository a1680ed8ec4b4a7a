/* convert_plan.c - decide what is quantized and lay out the output shards (see convert_plan.h). */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_plan.h"
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
static void qf_sibling_key(const char *module, char *key, size_t len)
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

void qf_plan_free(qf_convert_plan *p, int n_src)
{
    for (int i = 0; i < p->n_out; i++) free(p->out[i].name), free(p->out[i].cal_data);
    free(p->out);
    if (p->mods)
        for (int i = 0; i < n_src; i++) free(p->mods[i].module);
    free(p->mods);
    for (int i = 0; i < p->n_ignored; i++) free(p->ignored_modules[i]);
    free(p->ignored_modules);
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

qf_status qf_plan_build(const qf_convert_opts *o, const qf_checkpoint *ck, qf_convert_plan *p, qf_error *err)
{
    memset(p, 0, sizeof *p);
    regex_t re[QF_MAX_IGNORE];
    for (int i = 0; i < o->n_ignore; i++)
        if (regcomp(&re[i], o->ignore[i], REG_EXTENDED | REG_NOSUB) != 0) {
            for (int k = 0; k < i; k++) regfree(&re[k]);
            return qf_fail(err, QF_ERR_USAGE, "--ignore '%s' is not a valid extended regular expression", o->ignore[i]);
        }
    p->mods = calloc((size_t)ck->n_tensors, sizeof *p->mods);
    p->ignored_modules = calloc((size_t)ck->n_tensors + 1, sizeof(char *));
    int cap = ck->n_tensors * QF_PLAN_MAX + 1;
    p->out = calloc((size_t)cap, sizeof *p->out);
    qf_status st = QF_OK;
    for (int i = 0; i < ck->n_tensors && st == QF_OK; i++) {
        const qf_tensor *t = &ck->tensors[i];
        qf_module_plan *m = &p->mods[i];
        if (qf_is_linear_like(t) && !o->n_parts) { /* merge: everything is already packed */
            m->module = strndup(t->name, strlen(t->name) - 7);
            int ignored = qf_default_ignored(m->module);
            for (int k = 0; k < o->n_ignore && !ignored; k++) ignored = regexec(&re[k], m->module, 0, NULL, 0) == 0;
            if (!ignored && !qf_scheme_fits(o->scheme, t->shape[0], t->shape[1])) ignored = 1;
            int is_embedding = strstr(m->module, "embed") || strstr(m->module, "wte") || strstr(m->module, "wpe");
            if (ignored && !is_embedding && !strstr(m->module, "norm")) p->ignored_modules[p->n_ignored++] = strdup(m->module);
            if (!ignored) {
                m->quantized = 1;
                st = qf_quant_plan_linear(o->scheme, t->shape[0], t->shape[1], &m->plan, err);
                m->out_plan = m->plan; /* --layout modelopt: the same codes under ModelOpt's tensors */
                if (st == QF_OK && o->layout == QF_LAYOUT_MODELOPT)
                    st = qf_modelopt_plan(o->scheme, t->dtype, t->shape[0], t->shape[1], &m->out_plan, err);
            }
        }
        if (!m->quantized) {
            qf_out_tensor *ot = &p->out[p->n_out++];
            ot->name = strdup(t->name);
            ot->dtype = t->dtype;
            ot->ndim = t->ndim;
            memcpy(ot->shape, t->shape, sizeof ot->shape);
            ot->nbytes = t->nbytes;
            ot->src = i;
            ot->plan_index = -1;
            continue;
        }
        for (int k = 0; k < m->out_plan.n; k++) {
            const qf_packed_tensor *pt = &m->out_plan.t[k];
            qf_out_tensor *ot = &p->out[p->n_out++];
            size_t len = strlen(m->module) + strlen(pt->suffix) + 2;
            ot->name = malloc(len);
            snprintf(ot->name, len, "%s.%s", m->module, pt->suffix);
            ot->dtype = pt->dtype;
            ot->ndim = pt->ndim;
            ot->shape[0] = pt->shape[0];
            ot->shape[1] = pt->shape[1];
            ot->nbytes = pt->nbytes;
            ot->src = i;
            ot->plan_index = k;
        }
    }
    for (int i = 0; i < o->n_ignore; i++) regfree(&re[i]);
    if (st) return st;
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
    if (o->scheme && o->scheme->has_global_scale) {
        int n = ck->n_tensors;
        qf_sib *sib = calloc((size_t)n + 1, sizeof *sib);
        int ns = 0;
        for (int i = 0; i < n; i++)
            if (p->mods[i].quantized) {
                qf_sibling_key(p->mods[i].module, sib[ns].key, sizeof sib[ns].key);
                sib[ns].index = i;
                sib[ns].wanted = qf_in_slice(o, ck->tensors[i].name);
                ns++;
            }
        qsort(sib, (size_t)ns, sizeof *sib, qf_sib_cmp);
        for (int a0 = 0, a1; a0 < ns; a0 = a1) {
            int wanted = 0;
            for (a1 = a0; a1 < ns && strcmp(sib[a1].key, sib[a0].key) == 0; a1++) wanted |= sib[a1].wanted;
            if (!wanted) continue;
            float g = 0;
            for (int k = a0; k < a1; k++) {
                const qf_tensor *t = &ck->tensors[sib[k].index];
                float m = qf_tensor_absmax(t->dtype, t->data, qf_tensor_numel(t));
                qf_checkpoint_release(ck, t);
                if (m > g) g = m;
            }
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
    return t && c->plan->mods[t - c->ck->tensors].quantized;
}
