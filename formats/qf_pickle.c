/* qf_pickle.c - the restricted state_dict unpickler (see qf_pickle.h for the security model).
 *
 * A stack machine over inert values.  Every value is a pk_obj owned by the VM's object list
 * (freed in one sweep at the end, so shared and even cyclic references are harmless); the
 * stack, the MARK stack and the memo hold borrowed pointers.  Nothing here recurses.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_pickle.h"

typedef enum pk_kind {
    PK_NONE = 1,
    PK_BOOL,
    PK_INT,
    PK_FLOAT,
    PK_STR,
    PK_BYTES,
    PK_TUPLE,
    PK_LIST,
    PK_DICT, /* items = k0, v0, k1, v1, ... */
    PK_SET,
    PK_GLOBAL,
    PK_STORAGE,
    PK_TENSOR,
} pk_kind;

static const char *pk_kind_name(pk_kind k)
{
    static const char *const names[] = {"?",    "None", "bool",   "int",    "float",   "str",    "bytes",
                                        "tuple", "list", "dict", "set", "global", "storage", "tensor"};
    return (int)k > 0 && (size_t)k < sizeof names / sizeof *names ? names[k] : "?";
}

typedef enum pk_global_id {
    G_ODICT = 1,
    G_REBUILD_V2,
    G_REBUILD_V3,
    G_REBUILD_PARAM,
    G_REBUILD_PARAM_STATE,
    G_SIZE,
    G_STORAGE_TYPE, /* not callable: only inside a persistent id */
    G_DTYPE,        /* not callable: only as a _rebuild_tensor_v3 argument */
} pk_global_id;

typedef struct pk_global {
    const char *module, *name;
    pk_global_id id;
    qf_dtype dtype; /* storage element type / dtype; INVALID: known to torch, not read by qforge */
    int flag;       /* G_STORAGE_TYPE: 1 = UntypedStorage; G_DTYPE: 1 = float4_e2m1fn_x2 */
} pk_global;

/* The allow-list.  Names not in it are refused; nothing is ever imported. */
static const pk_global pk_allowed[] = {
    {"collections", "OrderedDict", G_ODICT, 0, 0},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, 0, 0},
    {"torch._utils", "_rebuild_tensor_v3", G_REBUILD_V3, 0, 0},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, 0, 0},
    {"torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAM_STATE, 0, 0},
    {"torch", "Size", G_SIZE, 0, 0},
    {"torch", "DoubleStorage", G_STORAGE_TYPE, QF_DTYPE_F64, 0},
    {"torch", "FloatStorage", G_STORAGE_TYPE, QF_DTYPE_F32, 0},
    {"torch", "HalfStorage", G_STORAGE_TYPE, QF_DTYPE_F16, 0},
    {"torch", "BFloat16Storage", G_STORAGE_TYPE, QF_DTYPE_BF16, 0},
    {"torch", "LongStorage", G_STORAGE_TYPE, QF_DTYPE_I64, 0},
    {"torch", "IntStorage", G_STORAGE_TYPE, QF_DTYPE_I32, 0},
    {"torch", "ShortStorage", G_STORAGE_TYPE, QF_DTYPE_I16, 0},
    {"torch", "CharStorage", G_STORAGE_TYPE, QF_DTYPE_I8, 0},
    {"torch", "ByteStorage", G_STORAGE_TYPE, QF_DTYPE_U8, 0},
    {"torch", "BoolStorage", G_STORAGE_TYPE, QF_DTYPE_BOOL, 0},
    {"torch", "UntypedStorage", G_STORAGE_TYPE, QF_DTYPE_U8, 1},
    {"torch", "ComplexDoubleStorage", G_STORAGE_TYPE, QF_DTYPE_INVALID, 0},
    {"torch", "ComplexFloatStorage", G_STORAGE_TYPE, QF_DTYPE_INVALID, 0},
    {"torch", "QInt8Storage", G_STORAGE_TYPE, QF_DTYPE_INVALID, 0},
    {"torch", "QUInt8Storage", G_STORAGE_TYPE, QF_DTYPE_INVALID, 0},
    {"torch", "QInt32Storage", G_STORAGE_TYPE, QF_DTYPE_INVALID, 0},
    {"torch", "QUInt4x2Storage", G_STORAGE_TYPE, QF_DTYPE_INVALID, 0},
    {"torch", "QUInt2x4Storage", G_STORAGE_TYPE, QF_DTYPE_INVALID, 0},
    {"torch", "float64", G_DTYPE, QF_DTYPE_F64, 0},
    {"torch", "float32", G_DTYPE, QF_DTYPE_F32, 0},
    {"torch", "float16", G_DTYPE, QF_DTYPE_F16, 0},
    {"torch", "bfloat16", G_DTYPE, QF_DTYPE_BF16, 0},
    {"torch", "int64", G_DTYPE, QF_DTYPE_I64, 0},
    {"torch", "int32", G_DTYPE, QF_DTYPE_I32, 0},
    {"torch", "int16", G_DTYPE, QF_DTYPE_I16, 0},
    {"torch", "int8", G_DTYPE, QF_DTYPE_I8, 0},
    {"torch", "uint8", G_DTYPE, QF_DTYPE_U8, 0},
    {"torch", "uint16", G_DTYPE, QF_DTYPE_U16, 0},
    {"torch", "uint32", G_DTYPE, QF_DTYPE_U32, 0},
    {"torch", "uint64", G_DTYPE, QF_DTYPE_U64, 0},
    {"torch", "bool", G_DTYPE, QF_DTYPE_BOOL, 0},
    {"torch", "float8_e4m3fn", G_DTYPE, QF_DTYPE_F8_E4M3, 0},
    {"torch", "float8_e5m2", G_DTYPE, QF_DTYPE_F8_E5M2, 0},
    {"torch", "float8_e8m0fnu", G_DTYPE, QF_DTYPE_F8_E8M0, 0},
    {"torch", "float4_e2m1fn_x2", G_DTYPE, QF_DTYPE_U8, 1},
    {"torch", "float8_e4m3fnuz", G_DTYPE, QF_DTYPE_INVALID, 0},
    {"torch", "float8_e5m2fnuz", G_DTYPE, QF_DTYPE_INVALID, 0},
    {"torch", "complex32", G_DTYPE, QF_DTYPE_INVALID, 0},
    {"torch", "complex64", G_DTYPE, QF_DTYPE_INVALID, 0},
    {"torch", "complex128", G_DTYPE, QF_DTYPE_INVALID, 0},
};

typedef struct pk_obj pk_obj;
struct pk_obj {
    pk_kind kind;
    int depth;                 /* containers: 1 + deepest child at the time it was added */
    int64_t i;                 /* BOOL / INT value; STORAGE: storage index; TENSOR: descriptor index */
    double f;                  /* FLOAT */
    const uint8_t *s;          /* STR / BYTES: borrowed from the stream */
    uint64_t slen;
    const pk_global *g;        /* GLOBAL */
    int untyped;               /* STORAGE: from an UntypedStorage */
    pk_obj **items;            /* TUPLE / LIST / DICT / SET (owned array, borrowed elements) */
    size_t n, cap;
};

typedef struct pk_vm {
    const char *label;
    const uint8_t *base, *p, *end;
    size_t op_at;              /* offset of the opcode being run, for messages */
    pk_obj **stack;
    size_t sp, scap;
    size_t marks[QF_PICKLE_MAX_MARKS];
    int nmarks;
    pk_obj **memo;
    size_t memo_cap, memo_next;
    pk_obj **objs;             /* every object, for the final sweep */
    size_t nobjs, ocap;
    qf_pickle_tensor *tens;    /* tensor descriptors (names unset) */
    int ntens, tcap;
    qf_state_dict *sd;         /* storages are appended here */
    qf_error *err;
} pk_vm;

static qf_status pk_fail(pk_vm *vm, qf_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static qf_status pk_fail(pk_vm *vm, qf_status code, const char *fmt, ...)
{
    char msg[QF_ERROR_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qf_fail(vm->err, code, "%s: %s (opcode at byte %zu)", vm->label, msg, vm->op_at);
}

/* ---- objects and the stack ------------------------------------------------------------ */

static pk_obj *pk_new(pk_vm *vm, pk_kind kind)
{
    if (vm->nobjs == vm->ocap) {
        size_t nc = vm->ocap ? vm->ocap * 2 : 256;
        pk_obj **n = realloc(vm->objs, nc * sizeof *n);
        if (!n) return NULL;
        vm->objs = n, vm->ocap = nc;
    }
    pk_obj *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->kind = kind;
    vm->objs[vm->nobjs++] = o;
    return o;
}

static qf_status pk_push(pk_vm *vm, pk_obj *o)
{
    if (!o) return pk_fail(vm, QF_ERR_NOMEM, "out of memory");
    if (vm->sp == vm->scap) {
        if (vm->scap >= QF_PICKLE_MAX_STACK)
            return pk_fail(vm, QF_ERR_FORMAT, "more than %d values on the stack", QF_PICKLE_MAX_STACK);
        size_t nc = vm->scap ? vm->scap * 2 : 64;
        if (nc > QF_PICKLE_MAX_STACK) nc = QF_PICKLE_MAX_STACK;
        pk_obj **n = realloc(vm->stack, nc * sizeof *n);
        if (!n) return pk_fail(vm, QF_ERR_NOMEM, "out of memory");
        vm->stack = n, vm->scap = nc;
    }
    vm->stack[vm->sp++] = o;
    return QF_OK;
}

/* Bottom of the stack region the caller may pop: above the innermost MARK. */
static size_t pk_floor(const pk_vm *vm) { return vm->nmarks ? vm->marks[vm->nmarks - 1] : 0; }

static qf_status pk_pop(pk_vm *vm, pk_obj **out)
{
    if (vm->sp <= pk_floor(vm)) return pk_fail(vm, QF_ERR_FORMAT, "stack underflow");
    *out = vm->stack[--vm->sp];
    return QF_OK;
}

static qf_status pk_top(pk_vm *vm, pk_obj **out)
{
    if (vm->sp <= pk_floor(vm)) return pk_fail(vm, QF_ERR_FORMAT, "stack underflow");
    *out = vm->stack[vm->sp - 1];
    return QF_OK;
}

/* Pop the innermost MARK: *first = index of the first value above it. */
static qf_status pk_pop_mark(pk_vm *vm, size_t *first)
{
    if (!vm->nmarks) return pk_fail(vm, QF_ERR_FORMAT, "no MARK to pop to");
    *first = vm->marks[--vm->nmarks];
    return QF_OK;
}

static qf_status pk_add(pk_vm *vm, pk_obj *c, pk_obj *item)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4;
        pk_obj **n = realloc(c->items, nc * sizeof *n);
        if (!n) return pk_fail(vm, QF_ERR_NOMEM, "out of memory");
        c->items = n, c->cap = nc;
    }
    c->items[c->n++] = item;
    if (item->depth + 1 > c->depth) c->depth = item->depth + 1;
    if (c->depth > QF_PICKLE_MAX_DEPTH)
        return pk_fail(vm, QF_ERR_FORMAT, "containers nested deeper than %d levels", QF_PICKLE_MAX_DEPTH);
    return QF_OK;
}

/* A new container of stack values [first, sp), which are popped. */
static qf_status pk_collect(pk_vm *vm, pk_kind kind, size_t first)
{
    pk_obj *c = pk_new(vm, kind);
    if (!c) return pk_fail(vm, QF_ERR_NOMEM, "out of memory");
    for (size_t k = first; k < vm->sp; k++) QF_TRY(pk_add(vm, c, vm->stack[k]));
    vm->sp = first;
    return pk_push(vm, c);
}

/* ---- reading the stream ---------------------------------------------------------------- */

static qf_status pk_need(pk_vm *vm, uint64_t n, const char *what)
{
    if ((uint64_t)(vm->end - vm->p) < n)
        return pk_fail(vm, QF_ERR_FORMAT, "truncated: %s needs %llu bytes, %zu left", what, (unsigned long long)n,
                       (size_t)(vm->end - vm->p));
    return QF_OK;
}

static uint64_t pk_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; k--) v = v << 8 | p[k];
    return v;
}

static qf_status pk_read_uint(pk_vm *vm, int n, uint64_t *v, const char *what)
{
    QF_TRY(pk_need(vm, (uint64_t)n, what));
    *v = pk_le(vm->p, n);
    vm->p += n;
    return QF_OK;
}

/* A string / bytes opcode: length of lenbytes bytes, then the payload (checked against the
 * bytes left before anything is allocated). */
static qf_status pk_read_str(pk_vm *vm, int lenbytes, pk_kind kind, const char *what)
{
    uint64_t len;
    QF_TRY(pk_read_uint(vm, lenbytes, &len, what));
    QF_TRY(pk_need(vm, len, what));
    pk_obj *o = pk_new(vm, kind);
    if (!o) return pk_fail(vm, QF_ERR_NOMEM, "out of memory");
    o->s = vm->p;
    o->slen = len;
    vm->p += len;
    return pk_push(vm, o);
}

static qf_status pk_push_int(pk_vm *vm, pk_kind kind, int64_t v)
{
    pk_obj *o = pk_new(vm, kind);
    if (o) o->i = v;
    return pk_push(vm, o);
}

/* ---- globals --------------------------------------------------------------------------- */

static int pk_streq(const uint8_t *s, uint64_t n, const char *z) { return strlen(z) == n && memcmp(s, z, n) == 0; }

static qf_status pk_lookup_global(pk_vm *vm, const uint8_t *mod, uint64_t ml, const uint8_t *name, uint64_t nl)
{
    for (size_t k = 0; k < sizeof pk_allowed / sizeof *pk_allowed; k++)
        if (pk_streq(mod, ml, pk_allowed[k].module) && pk_streq(name, nl, pk_allowed[k].name)) {
            pk_obj *o = pk_new(vm, PK_GLOBAL);
            if (o) o->g = &pk_allowed[k];
            return pk_push(vm, o);
        }
    return pk_fail(vm, QF_ERR_SECURITY, "global '%.*s %.*s' is not allowed", (int)(ml > 100 ? 100 : ml), (const char *)mod,
                   (int)(nl > 100 ? 100 : nl), (const char *)name);
}

/* GLOBAL: "module\nname\n" */
static qf_status pk_op_global(pk_vm *vm)
{
    const uint8_t *part[2];
    uint64_t len[2];
    for (int k = 0; k < 2; k++) {
        size_t left = (size_t)(vm->end - vm->p), lim = left < 512 ? left : 512;
        const uint8_t *nl = memchr(vm->p, '\n', lim);
        if (!nl) return pk_fail(vm, QF_ERR_FORMAT, "GLOBAL %s is not a line of at most 511 bytes", k ? "name" : "module");
        part[k] = vm->p;
        len[k] = (uint64_t)(nl - vm->p);
        vm->p = nl + 1;
    }
    return pk_lookup_global(vm, part[0], len[0], part[1], len[1]);
}

static const char *pk_desc(const pk_obj *o, char *buf, size_t n)
{
    if (o->kind == PK_GLOBAL) snprintf(buf, n, "'%s %s'", o->g->module, o->g->name);
    else snprintf(buf, n, "a %s", pk_kind_name(o->kind));
    return buf;
}

/* ---- storages and tensors -------------------------------------------------------------- */

static int pk_int(const pk_obj *o, int64_t *v)
{
    if (o->kind != PK_INT && o->kind != PK_BOOL) return 0;
    *v = o->i;
    return 1;
}

/* BINPERSID: ('storage', storage_type, key, location, numel) -> a storage reference. */
static qf_status pk_persistent(pk_vm *vm, pk_obj *pid)
{
    int64_t numel;
    if (pid->kind != PK_TUPLE || pid->n != 5 || pid->items[0]->kind != PK_STR ||
        !pk_streq(pid->items[0]->s, pid->items[0]->slen, "storage") || pid->items[2]->kind != PK_STR ||
        pid->items[3]->kind != PK_STR || !pk_int(pid->items[4], &numel))
        return pk_fail(vm, QF_ERR_FORMAT, "persistent id is not ('storage', type, key, location, numel)");
    pk_obj *ty = pid->items[1], *key = pid->items[2];
    char d[96];
    if (ty->kind != PK_GLOBAL || ty->g->id != G_STORAGE_TYPE)
        return pk_fail(vm, QF_ERR_SECURITY, "storage type %s is not a torch storage class", pk_desc(ty, d, sizeof d));
    if (ty->g->dtype == QF_DTYPE_INVALID)
        return pk_fail(vm, QF_ERR_UNSUPPORTED, "storage type 'torch %s' is not supported", ty->g->name);
    if (key->slen == 0 || key->slen >= QF_PICKLE_KEY_MAX)
        return pk_fail(vm, QF_ERR_FORMAT, "storage key of %llu bytes (1 to %d allowed)", (unsigned long long)key->slen,
                       QF_PICKLE_KEY_MAX - 1);
    for (uint64_t k = 0; k < key->slen; k++) {
        uint8_t c = key->s[k];
        int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-' ||
                 (c == '.' && k > 0);
        if (!ok) return pk_fail(vm, QF_ERR_FORMAT, "storage key '%.*s' has a character outside [A-Za-z0-9_.-]", (int)key->slen,
                                (const char *)key->s);
    }
    uint64_t es = (uint64_t)qf_dtype_bits(ty->g->dtype) / 8;
    if (numel < 0 || (uint64_t)numel > (UINT64_C(1) << 62) / es)
        return pk_fail(vm, QF_ERR_FORMAT, "storage '%.*s' has an impossible element count %lld", (int)key->slen,
                       (const char *)key->s, (long long)numel);
    uint64_t nbytes = (uint64_t)numel * es;
    int idx = -1;
    qf_state_dict *sd = vm->sd;
    for (int k = 0; k < sd->n_storages && idx < 0; k++)
        if (pk_streq(key->s, key->slen, sd->storages[k].key)) idx = k;
    if (idx >= 0) {
        if (sd->storages[idx].dtype != ty->g->dtype || sd->storages[idx].nbytes != nbytes)
            return pk_fail(vm, QF_ERR_FORMAT, "storage '%s' is declared twice with different types or sizes",
                           sd->storages[idx].key);
    } else {
        if ((sd->n_storages & (sd->n_storages - 1)) == 0) { /* grow at powers of two */
            qf_pickle_storage *n = realloc(sd->storages, sizeof *n * (size_t)(sd->n_storages ? sd->n_storages * 2 : 1));
            if (!n) return pk_fail(vm, QF_ERR_NOMEM, "out of memory");
            sd->storages = n;
        }
        idx = sd->n_storages++;
        qf_pickle_storage *s = &sd->storages[idx];
        memset(s, 0, sizeof *s);
        memcpy(s->key, key->s, (size_t)key->slen);
        s->dtype = ty->g->dtype;
        s->nbytes = nbytes;
    }
    pk_obj *o = pk_new(vm, PK_STORAGE);
    if (o) o->i = idx, o->untyped = ty->g->flag;
    return pk_push(vm, o);
}

uint64_t qf_pickle_view_end(const qf_pickle_tensor *t, int *overflow)
{
    unsigned __int128 last = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) return 0;
        last += (unsigned __int128)(uint64_t)(t->shape[d] - 1) * (uint64_t)t->stride[d];
    }
    unsigned __int128 end = (last + 1) * (unsigned)(qf_dtype_bits(t->dtype) / 8);
    if (end > (unsigned __int128)UINT64_MAX) {
        *overflow = 1;
        return 0;
    }
    return (uint64_t)end;
}

int qf_pickle_view_contiguous(const qf_pickle_tensor *t)
{
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] == 0) return 1;
        if (t->shape[d] != 1 && t->stride[d] != expect) return 0;
        expect *= t->shape[d];
    }
    return 1;
}

/* _rebuild_tensor_v2 (storage, offset, size, stride, requires_grad, hooks[, metadata]) and
 * _v3 (..., hooks, dtype[, metadata]). */
static qf_status pk_rebuild_tensor(pk_vm *vm, pk_obj *args, int v3)
{
    size_t need = v3 ? 7 : 6;
    if (args->n != need && args->n != need + 1)
        return pk_fail(vm, QF_ERR_FORMAT, "_rebuild_tensor_%s takes %zu or %zu arguments, got %zu", v3 ? "v3" : "v2",
                       need, need + 1, args->n);
    pk_obj *st = args->items[0], *size = args->items[2], *stride = args->items[3];
    int64_t off;
    if (st->kind != PK_STORAGE) return pk_fail(vm, QF_ERR_FORMAT, "tensor storage is a %s", pk_kind_name(st->kind));
    if (!pk_int(args->items[1], &off) || off < 0)
        return pk_fail(vm, QF_ERR_FORMAT, "tensor storage_offset is not a non-negative int");
    if (size->kind != PK_TUPLE || stride->kind != PK_TUPLE || size->n != stride->n)
        return pk_fail(vm, QF_ERR_FORMAT, "tensor size and stride are not tuples of one length");
    if (size->n > QF_PICKLE_MAX_DIMS)
        return pk_fail(vm, QF_ERR_UNSUPPORTED, "tensor of rank %zu (at most %d)", size->n, QF_PICKLE_MAX_DIMS);
    qf_pickle_tensor t = {0};
    const qf_pickle_storage *s = &vm->sd->storages[st->i];
    t.storage = (int)st->i;
    t.offset = (uint64_t)off;
    t.ndim = (int)size->n;
    for (int d = 0; d < t.ndim; d++) {
        if (!pk_int(size->items[d], &t.shape[d]) || !pk_int(stride->items[d], &t.stride[d]) || t.shape[d] < 0 ||
            t.stride[d] < 0)
            return pk_fail(vm, QF_ERR_FORMAT, "tensor size / stride entry %d is not a non-negative int", d);
    }
    if (v3) {
        pk_obj *dt = args->items[6];
        char d[96];
        if (dt->kind != PK_GLOBAL || dt->g->id != G_DTYPE)
            return pk_fail(vm, QF_ERR_FORMAT, "_rebuild_tensor_v3 dtype is %s", pk_desc(dt, d, sizeof d));
        if (dt->g->dtype == QF_DTYPE_INVALID)
            return pk_fail(vm, QF_ERR_UNSUPPORTED, "dtype 'torch %s' is not supported", dt->g->name);
        t.dtype = dt->g->dtype;
        t.fp4x2 = dt->g->flag;
        if (!st->untyped && qf_dtype_bits(t.dtype) != qf_dtype_bits(s->dtype))
            return pk_fail(vm, QF_ERR_FORMAT, "dtype 'torch %s' viewed on a %s storage", dt->g->name,
                           qf_dtype_name(s->dtype));
    } else {
        if (st->untyped) return pk_fail(vm, QF_ERR_FORMAT, "_rebuild_tensor_v2 on an UntypedStorage (no dtype)");
        t.dtype = s->dtype;
    }
    int ovf = 0;
    uint64_t end = qf_pickle_view_end(&t, &ovf);
    if (ovf || end > s->nbytes)
        return pk_fail(vm, QF_ERR_FORMAT, "tensor view (offset %llu, shape and strides) reaches byte %s%llu of storage '%s' "
                       "which has %llu bytes",
                       (unsigned long long)t.offset, ovf ? ">" : "", (unsigned long long)(ovf ? UINT64_MAX : end), s->key,
                       (unsigned long long)s->nbytes);
    /* The bytes the view materialises may not exceed its storage: more would mean elements
     * read more than once (a stride-0 broadcast or overlapping strides), which a 1.5 KB file can
     * use to ask for 20 GB, or an element count past 64 bits.  safetensors cannot express such
     * a view, so it is refused rather than expanded. */
    unsigned __int128 view_bytes = qf_dtype_bits(t.dtype) / 8;
    for (int d = 0; d < t.ndim && view_bytes <= (unsigned __int128)UINT64_MAX; d++) view_bytes *= (uint64_t)t.shape[d];
    if (view_bytes > s->nbytes)
        return pk_fail(vm, QF_ERR_UNSUPPORTED, "tensor view of storage '%s' would materialise %s%llu bytes from its %llu "
                       "(a broadcast or overlapping view; save the tensor contiguous)", s->key,
                       view_bytes > (unsigned __int128)UINT64_MAX ? ">" : "",
                       (unsigned long long)(view_bytes > (unsigned __int128)UINT64_MAX ? UINT64_MAX : (uint64_t)view_bytes),
                       (unsigned long long)s->nbytes);
    if (vm->ntens == vm->tcap) {
        int nc = vm->tcap ? vm->tcap * 2 : 64;
        qf_pickle_tensor *n = realloc(vm->tens, sizeof *n * (size_t)nc);
        if (!n) return pk_fail(vm, QF_ERR_NOMEM, "out of memory");
        vm->tens = n, vm->tcap = nc;
    }
    vm->tens[vm->ntens] = t;
    pk_obj *o = pk_new(vm, PK_TENSOR);
    if (o) o->i = vm->ntens++;
    return pk_push(vm, o);
}

/* REDUCE / NEWOBJ: call an allow-listed callable on a tuple of arguments. */
static qf_status pk_call(pk_vm *vm, pk_obj *fn, pk_obj *args, const char *op)
{
    char d[96];
    if (fn->kind != PK_GLOBAL || fn->g->id == G_STORAGE_TYPE || fn->g->id == G_DTYPE)
        return pk_fail(vm, QF_ERR_SECURITY, "%s on %s is not allowed", op, pk_desc(fn, d, sizeof d));
    if (args->kind != PK_TUPLE) return pk_fail(vm, QF_ERR_FORMAT, "%s arguments are a %s, not a tuple", op, pk_kind_name(args->kind));
    if (op[0] == 'N' && fn->g->id != G_ODICT) /* NEWOBJ: only OrderedDict makes sense */
        return pk_fail(vm, QF_ERR_SECURITY, "%s on %s is not allowed", op, pk_desc(fn, d, sizeof d));
    switch (fn->g->id) {
    case G_ODICT:
        if (args->n != 0) return pk_fail(vm, QF_ERR_UNSUPPORTED, "OrderedDict called with %zu arguments", args->n);
        return pk_push(vm, pk_new(vm, PK_DICT));
    case G_SIZE:
        if (args->n != 1 || args->items[0]->kind != PK_TUPLE)
            return pk_fail(vm, QF_ERR_FORMAT, "torch.Size takes one tuple");
        return pk_push(vm, args->items[0]);
    case G_REBUILD_V2: return pk_rebuild_tensor(vm, args, 0);
    case G_REBUILD_V3: return pk_rebuild_tensor(vm, args, 1);
    case G_REBUILD_PARAM:
    case G_REBUILD_PARAM_STATE:
        if (args->n < 1 || args->items[0]->kind != PK_TENSOR)
            return pk_fail(vm, QF_ERR_FORMAT, "%s needs a tensor as its first argument", fn->g->name);
        return pk_push(vm, args->items[0]);
    default: break;
    }
    return pk_fail(vm, QF_ERR_SECURITY, "%s on %s is not allowed", op, pk_desc(fn, d, sizeof d));
}

/* ---- memo ------------------------------------------------------------------------------ */

static qf_status pk_memo_put(pk_vm *vm, uint64_t idx)
{
    /* torch (and pickle) number memo slots 0, 1, 2, ...; a stream of n bytes cannot have
     * stored more than n of them, so a larger index is a lie. */
    if (idx >= QF_PICKLE_MAX_MEMO || idx > (uint64_t)(vm->end - vm->base))
        return pk_fail(vm, QF_ERR_FORMAT, "memo index %llu is out of range", (unsigned long long)idx);
    pk_obj *top = NULL;
    QF_TRY(pk_top(vm, &top));
    if (idx >= vm->memo_cap) {
        size_t nc = vm->memo_cap ? vm->memo_cap : 64;
        while (nc <= idx) nc *= 2;
        pk_obj **n = realloc(vm->memo, nc * sizeof *n);
        if (!n) return pk_fail(vm, QF_ERR_NOMEM, "out of memory");
        memset(n + vm->memo_cap, 0, (nc - vm->memo_cap) * sizeof *n);
        vm->memo = n, vm->memo_cap = nc;
    }
    vm->memo[idx] = top;
    return QF_OK;
}

static qf_status pk_memo_get(pk_vm *vm, uint64_t idx)
{
    if (idx >= vm->memo_cap || !vm->memo[idx])
        return pk_fail(vm, QF_ERR_FORMAT, "memo index %llu was never stored", (unsigned long long)idx);
    return pk_push(vm, vm->memo[idx]);
}

/* ---- the machine ----------------------------------------------------------------------- */

static qf_status pk_run(pk_vm *vm, pk_obj **result)
{
    pk_obj *a = NULL, *b = NULL, *c = NULL;
    uint64_t v = 0;
    size_t first = 0;
    while (vm->p < vm->end) {
        vm->op_at = (size_t)(vm->p - vm->base);
        uint8_t op = *vm->p++;
        switch (op) {
        case 0x80: /* PROTO */
            QF_TRY(pk_read_uint(vm, 1, &v, "PROTO"));
            if (v < 2 || v > 5) return pk_fail(vm, QF_ERR_UNSUPPORTED, "pickle protocol %llu (2 to 5 are read)", (unsigned long long)v);
            break;
        case 0x95: /* FRAME: a length hint; the opcodes follow inline */
            QF_TRY(pk_read_uint(vm, 8, &v, "FRAME"));
            QF_TRY(pk_need(vm, v, "FRAME"));
            break;
        case '(': /* MARK */
            if (vm->nmarks == QF_PICKLE_MAX_MARKS)
                return pk_fail(vm, QF_ERR_FORMAT, "more than %d nested MARKs", QF_PICKLE_MAX_MARKS);
            vm->marks[vm->nmarks++] = vm->sp;
            break;
        case '.': /* STOP */
            QF_TRY(pk_pop(vm, result));
            return QF_OK;
        case 'c': QF_TRY(pk_op_global(vm)); break;
        case 0x93: /* STACK_GLOBAL */
            QF_TRY(pk_pop(vm, &b));
            QF_TRY(pk_pop(vm, &a));
            if (a->kind != PK_STR || b->kind != PK_STR) return pk_fail(vm, QF_ERR_FORMAT, "STACK_GLOBAL needs two strings");
            QF_TRY(pk_lookup_global(vm, a->s, a->slen, b->s, b->slen));
            break;
        case 'Q': /* BINPERSID */
            QF_TRY(pk_pop(vm, &a));
            QF_TRY(pk_persistent(vm, a));
            break;
        case 'R': /* REDUCE */
            QF_TRY(pk_pop(vm, &b));
            QF_TRY(pk_pop(vm, &a));
            QF_TRY(pk_call(vm, a, b, "REDUCE"));
            break;
        case 0x81: /* NEWOBJ */
            QF_TRY(pk_pop(vm, &b));
            QF_TRY(pk_pop(vm, &a));
            QF_TRY(pk_call(vm, a, b, "NEWOBJ"));
            break;
        case 'b': /* BUILD: state is ignored (OrderedDict _metadata, tensor python state) */
            QF_TRY(pk_pop(vm, &b));
            QF_TRY(pk_top(vm, &a));
            if (a->kind != PK_DICT && a->kind != PK_TENSOR) {
                char d[96];
                return pk_fail(vm, QF_ERR_SECURITY, "BUILD on %s is not allowed", pk_desc(a, d, sizeof d));
            }
            break;
        case '}': QF_TRY(pk_push(vm, pk_new(vm, PK_DICT))); break;
        case ']': QF_TRY(pk_push(vm, pk_new(vm, PK_LIST))); break;
        case ')': QF_TRY(pk_push(vm, pk_new(vm, PK_TUPLE))); break;
        case 0x8f: QF_TRY(pk_push(vm, pk_new(vm, PK_SET))); break;
        case 't': QF_TRY(pk_pop_mark(vm, &first)); QF_TRY(pk_collect(vm, PK_TUPLE, first)); break;
        case 'l': QF_TRY(pk_pop_mark(vm, &first)); QF_TRY(pk_collect(vm, PK_LIST, first)); break;
        case 0x91: QF_TRY(pk_pop_mark(vm, &first)); QF_TRY(pk_collect(vm, PK_SET, first)); break;
        case 'd':
            QF_TRY(pk_pop_mark(vm, &first));
            if ((vm->sp - first) % 2) return pk_fail(vm, QF_ERR_FORMAT, "DICT with an odd number of items");
            QF_TRY(pk_collect(vm, PK_DICT, first));
            break;
        case 0x85: case 0x86: case 0x87: /* TUPLE1..3 */
            if (vm->sp - pk_floor(vm) < (size_t)(op - 0x84)) return pk_fail(vm, QF_ERR_FORMAT, "stack underflow");
            QF_TRY(pk_collect(vm, PK_TUPLE, vm->sp - (size_t)(op - 0x84)));
            break;
        case 's': /* SETITEM */
            QF_TRY(pk_pop(vm, &b));
            QF_TRY(pk_pop(vm, &a));
            QF_TRY(pk_top(vm, &c));
            if (c->kind != PK_DICT) return pk_fail(vm, QF_ERR_FORMAT, "SETITEM on a %s", pk_kind_name(c->kind));
            QF_TRY(pk_add(vm, c, a));
            QF_TRY(pk_add(vm, c, b));
            break;
        case 'u': case 'e': case 0x90: { /* SETITEMS, APPENDS, ADDITEMS */
            QF_TRY(pk_pop_mark(vm, &first));
            if (first <= pk_floor(vm)) return pk_fail(vm, QF_ERR_FORMAT, "no container below the MARK");
            c = vm->stack[first - 1];
            pk_kind want = op == 'u' ? PK_DICT : op == 'e' ? PK_LIST : PK_SET;
            if (c->kind != want) return pk_fail(vm, QF_ERR_FORMAT, "%s into a %s", op == 'u' ? "SETITEMS" : op == 'e' ? "APPENDS" : "ADDITEMS",
                                                pk_kind_name(c->kind));
            if (op == 'u' && (vm->sp - first) % 2) return pk_fail(vm, QF_ERR_FORMAT, "SETITEMS with an odd number of items");
            for (size_t k = first; k < vm->sp; k++) QF_TRY(pk_add(vm, c, vm->stack[k]));
            vm->sp = first;
            break;
        }
        case 'a': /* APPEND */
            QF_TRY(pk_pop(vm, &b));
            QF_TRY(pk_top(vm, &a));
            if (a->kind != PK_LIST) return pk_fail(vm, QF_ERR_FORMAT, "APPEND to a %s", pk_kind_name(a->kind));
            QF_TRY(pk_add(vm, a, b));
            break;
        case 'J': QF_TRY(pk_read_uint(vm, 4, &v, "BININT")); QF_TRY(pk_push_int(vm, PK_INT, (int32_t)(uint32_t)v)); break;
        case 'K': QF_TRY(pk_read_uint(vm, 1, &v, "BININT1")); QF_TRY(pk_push_int(vm, PK_INT, (int64_t)v)); break;
        case 'M': QF_TRY(pk_read_uint(vm, 2, &v, "BININT2")); QF_TRY(pk_push_int(vm, PK_INT, (int64_t)v)); break;
        case 0x8a: case 0x8b: { /* LONG1, LONG4: little-endian two's complement */
            QF_TRY(pk_read_uint(vm, op == 0x8a ? 1 : 4, &v, "LONG"));
            if (v > 8) return pk_fail(vm, QF_ERR_UNSUPPORTED, "integer of %llu bytes (at most 8)", (unsigned long long)v);
            QF_TRY(pk_need(vm, v, "LONG"));
            uint64_t u = v ? pk_le(vm->p, (int)v) : 0;
            if (v && v < 8 && (vm->p[v - 1] & 0x80)) u |= ~UINT64_C(0) << (8 * v); /* sign-extend */
            vm->p += v;
            QF_TRY(pk_push_int(vm, PK_INT, (int64_t)u));
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            QF_TRY(pk_need(vm, 8, "BINFLOAT"));
            uint64_t u = 0;
            for (int k = 0; k < 8; k++) u = u << 8 | vm->p[k];
            vm->p += 8;
            pk_obj *o = pk_new(vm, PK_FLOAT);
            if (o) memcpy(&o->f, &u, 8);
            QF_TRY(pk_push(vm, o));
            break;
        }
        case 'X': QF_TRY(pk_read_str(vm, 4, PK_STR, "BINUNICODE")); break;
        case 0x8c: QF_TRY(pk_read_str(vm, 1, PK_STR, "SHORT_BINUNICODE")); break;
        case 0x8d: QF_TRY(pk_read_str(vm, 8, PK_STR, "BINUNICODE8")); break;
        case 'U': QF_TRY(pk_read_str(vm, 1, PK_STR, "SHORT_BINSTRING")); break;
        case 'T': QF_TRY(pk_read_str(vm, 4, PK_STR, "BINSTRING")); break;
        case 'C': QF_TRY(pk_read_str(vm, 1, PK_BYTES, "SHORT_BINBYTES")); break;
        case 'B': QF_TRY(pk_read_str(vm, 4, PK_BYTES, "BINBYTES")); break;
        case 0x8e: QF_TRY(pk_read_str(vm, 8, PK_BYTES, "BINBYTES8")); break;
        case 0x96: QF_TRY(pk_read_str(vm, 8, PK_BYTES, "BYTEARRAY8")); break;
        case 'N': QF_TRY(pk_push(vm, pk_new(vm, PK_NONE))); break;
        case 0x88: QF_TRY(pk_push_int(vm, PK_BOOL, 1)); break;
        case 0x89: QF_TRY(pk_push_int(vm, PK_BOOL, 0)); break;
        case '0': QF_TRY(pk_pop(vm, &a)); break; /* POP */
        case '1': QF_TRY(pk_pop_mark(vm, &first)); vm->sp = first; break; /* POP_MARK */
        case '2': QF_TRY(pk_top(vm, &a)); QF_TRY(pk_push(vm, a)); break; /* DUP */
        case 'q': QF_TRY(pk_read_uint(vm, 1, &v, "BINPUT")); QF_TRY(pk_memo_put(vm, v)); break;
        case 'r': QF_TRY(pk_read_uint(vm, 4, &v, "LONG_BINPUT")); QF_TRY(pk_memo_put(vm, v)); break;
        case 0x94: QF_TRY(pk_memo_put(vm, vm->memo_next)); vm->memo_next++; break; /* MEMOIZE */
        case 'h': QF_TRY(pk_read_uint(vm, 1, &v, "BINGET")); QF_TRY(pk_memo_get(vm, v)); break;
        case 'j': QF_TRY(pk_read_uint(vm, 4, &v, "LONG_BINGET")); QF_TRY(pk_memo_get(vm, v)); break;
        case 'i': case 'o': case 0x82: case 0x83: case 0x84: /* INST, OBJ, EXT1/2/4: would build objects */
            return pk_fail(vm, QF_ERR_SECURITY, "opcode 0x%02x (%s) is not allowed", op,
                           op == 'i' ? "INST" : op == 'o' ? "OBJ" : "EXT");
        default:
            return pk_fail(vm, QF_ERR_FORMAT, "unknown or unsupported opcode 0x%02x", op);
        }
    }
    vm->op_at = (size_t)(vm->end - vm->base);
    return pk_fail(vm, QF_ERR_FORMAT, "truncated: the stream ends without STOP");
}

/* ---- result ---------------------------------------------------------------------------- */

static int pk_utf8_ok(const uint8_t *s, uint64_t n)
{
    for (uint64_t i = 0; i < n;) {
        uint8_t c = s[i];
        int k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (c == 0 || k < 0 || (k == 1 && c < 0xc2) || i + (uint64_t)k >= n) return 0;
        for (int j = 1; j <= k; j++)
            if ((s[i + (uint64_t)j] & 0xc0) != 0x80) return 0;
        i += (uint64_t)k + 1;
    }
    return 1;
}

static int pk_name_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_pickle_tensor *)a)->name, ((const qf_pickle_tensor *)b)->name);
}

static qf_status pk_extract(pk_vm *vm, pk_obj *top, qf_state_dict *sd)
{
    vm->op_at = (size_t)(vm->end - vm->base);
    if (top->kind != PK_DICT)
        return qf_fail(vm->err, QF_ERR_UNSUPPORTED, "%s: the pickled object is a %s, not a state_dict", vm->label,
                       pk_kind_name(top->kind));
    size_t n = top->n / 2;
    sd->tensors = calloc(n + 1, sizeof *sd->tensors);
    if (!sd->tensors) return qf_fail(vm->err, QF_ERR_NOMEM, "%s: out of memory", vm->label);
    for (size_t k = 0; k < n; k++) {
        pk_obj *key = top->items[2 * k], *val = top->items[2 * k + 1];
        if (key->kind != PK_STR || key->slen == 0 || key->slen > 4096 || !pk_utf8_ok(key->s, key->slen))
            return qf_fail(vm->err, QF_ERR_FORMAT, "%s: state_dict key %zu is not a UTF-8 string of 1 to 4096 bytes",
                           vm->label, k);
        if (val->kind != PK_TENSOR)
            return qf_fail(vm->err, QF_ERR_UNSUPPORTED, "%s: state_dict entry '%.*s' is a %s, not a tensor", vm->label,
                           (int)key->slen, (const char *)key->s, pk_kind_name(val->kind));
        qf_pickle_tensor *t = &sd->tensors[sd->n_tensors];
        *t = vm->tens[val->i];
        t->name = strndup((const char *)key->s, (size_t)key->slen);
        if (!t->name) return qf_fail(vm->err, QF_ERR_NOMEM, "%s: out of memory", vm->label);
        sd->n_tensors++;
    }
    qf_pickle_tensor *sorted = malloc(sizeof *sorted * (n + 1));
    if (!sorted) return qf_fail(vm->err, QF_ERR_NOMEM, "%s: out of memory", vm->label);
    memcpy(sorted, sd->tensors, sizeof *sorted * n);
    qsort(sorted, n, sizeof *sorted, pk_name_cmp);
    qf_status s = QF_OK;
    for (size_t k = 1; k < n && s == QF_OK; k++)
        if (strcmp(sorted[k - 1].name, sorted[k].name) == 0)
            s = qf_fail(vm->err, QF_ERR_FORMAT, "%s: tensor '%s' appears twice", vm->label, sorted[k].name);
    free(sorted);
    return s;
}

void qf_state_dict_free(qf_state_dict *sd)
{
    if (!sd) return;
    for (int i = 0; i < sd->n_tensors; i++) free(sd->tensors[i].name);
    free(sd->tensors);
    free(sd->storages);
    memset(sd, 0, sizeof *sd);
}

qf_status qf_pickle_load_state_dict(const char *label, const uint8_t *data, size_t size, qf_state_dict *out,
                                    qf_error *err)
{
    memset(out, 0, sizeof *out);
    pk_vm vm = {0};
    vm.label = label;
    vm.base = vm.p = data;
    vm.end = data + size;
    vm.sd = out;
    vm.err = err;
    pk_obj *top = NULL;
    qf_status s = size ? pk_run(&vm, &top) : qf_fail(err, QF_ERR_FORMAT, "%s: empty pickle", label);
    if (s == QF_OK) s = pk_extract(&vm, top, out);
    for (size_t k = 0; k < vm.nobjs; k++) {
        free(vm.objs[k]->items);
        free(vm.objs[k]);
    }
    free(vm.objs);
    free(vm.stack);
    free(vm.memo);
    free(vm.tens);
    if (s != QF_OK) qf_state_dict_free(out);
    return s;
}
