/* qf_pickle.h - a restricted unpickler for PyTorch state_dicts (data.pkl of a .bin / .pt).
 *
 * Owns the one piece of qforge that reads Python pickles, and its security model:
 * loading never executes anything.  The stream is run on a small stack machine that knows
 * only the opcodes a torch.save'd state_dict uses (protocols 2-5: PROTO, FRAME, MARK, STOP,
 * GLOBAL / STACK_GLOBAL, BINPERSID, REDUCE, NEWOBJ, BUILD, the empty containers, TUPLE*,
 * APPEND(S), SETITEM(S), ADDITEMS, BININT*, LONG1, BINFLOAT, the string and bytes opcodes,
 * NONE / NEWTRUE / NEWFALSE, POP, POP_MARK, DUP and the memo opcodes).  GLOBAL names are
 * looked up in a fixed allow-list and become inert tokens; nothing is ever imported:
 *
 *   collections.OrderedDict                      callable: () -> empty dict
 *   torch._utils._rebuild_tensor_v2 / _v3         callable: builds a tensor descriptor
 *   torch._utils._rebuild_parameter(_with_state)  callable: returns its tensor argument
 *   torch.Size                                    callable: (tuple) -> tuple
 *   torch.<X>Storage, torch.UntypedStorage        storage types (only inside a persistent id)
 *   torch.<dtype> (float16, bfloat16, float8_e4m3fn, ...)   dtypes (only as a v3 argument)
 *
 * Any other global is refused with QF_ERR_SECURITY ("data.pkl: global 'os system' is not
 * allowed"), and so is REDUCE / NEWOBJ on anything that is not an allow-listed callable,
 * BUILD on anything but a dict or a tensor, and the code-running opcodes INST / OBJ.
 * Everything is bounded: string and frame lengths against the bytes left, memo indices
 * (at most QF_PICKLE_MAX_MEMO and never more than the stream could have stored), the value
 * stack, the MARK stack and container nesting (QF_PICKLE_MAX_*), LONG1 widths, tensor rank,
 * and every tensor view (offset + strides) against the element count of its storage.
 * A malformed or truncated stream is QF_ERR_FORMAT naming the byte offset; a valid but
 * unusable one (complex dtypes, a top-level object that is not a dict of tensors) is
 * QF_ERR_UNSUPPORTED.  The VM never recurses, so cyclic or deep input cannot exhaust the C
 * stack.
 *
 * The result describes tensors as views (dtype, shape, element strides, element offset)
 * into storages named by their archive key ("0", "1", ...); qf_zip_checkpoint.h resolves
 * the keys to bytes.  Persistent ids follow torch.save:
 *   ('storage', <storage type>, key:str, location:str, numel:int)
 * numel counts elements of the storage type (bytes for UntypedStorage).
 */
#ifndef QF_PICKLE_H
#define QF_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "qf_dtype.h"
#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QF_PICKLE_MAX_STACK 1000000  /* values on the VM stack */
#define QF_PICKLE_MAX_MARKS 64       /* open MARKs at once */
#define QF_PICKLE_MAX_DEPTH 64       /* container nesting */
#define QF_PICKLE_MAX_MEMO (1u << 24) /* memo slots */
#define QF_PICKLE_MAX_DIMS 8
#define QF_PICKLE_KEY_MAX 64         /* storage keys: [A-Za-z0-9_.-], at most 63 bytes */

typedef struct qf_pickle_storage {
    char key[QF_PICKLE_KEY_MAX]; /* archive record "data/<key>" */
    qf_dtype dtype;              /* element type of the storage; U8 for UntypedStorage */
    uint64_t nbytes;             /* numel * element size */
} qf_pickle_storage;

typedef struct qf_pickle_tensor {
    char *name;                  /* state_dict key (owned) */
    qf_dtype dtype;              /* element type of the view (F4 pairs: see fp4x2) */
    int fp4x2;                   /* torch.float4_e2m1fn_x2: dtype is U8 here (one byte = two
                                  * values); the reader turns it into F4 with the last dim doubled */
    int ndim;
    int64_t shape[QF_PICKLE_MAX_DIMS];  /* elements */
    int64_t stride[QF_PICKLE_MAX_DIMS]; /* elements, >= 0 */
    uint64_t offset;             /* storage_offset, elements */
    int storage;                 /* index into qf_state_dict.storages */
} qf_pickle_tensor;

typedef struct qf_state_dict {
    int n_tensors;
    qf_pickle_tensor *tensors;   /* in pickle order */
    int n_storages;
    qf_pickle_storage *storages; /* in order of first reference */
} qf_state_dict;

/* Run the pickle data[size] (label names it in messages, e.g. "x.bin: data.pkl") and
 * describe the state_dict it holds.  The top-level object must be a dict (OrderedDict) of
 * str -> tensor; every view is checked to lie inside its storage.  On success *out is filled
 * (free with qf_state_dict_free); on failure it is zeroed.  Thread-safe; no global state. */
qf_status qf_pickle_load_state_dict(const char *label, const uint8_t *data, size_t size, qf_state_dict *out,
                                    qf_error *err);
void qf_state_dict_free(qf_state_dict *sd); /* NULL ok; zeroes it */

/* Bytes a view spans in its storage: (offset + sum (shape_i - 1) * stride_i + 1) * elem
 * bytes, 0 for an empty tensor.  Returns 0 and sets *overflow on arithmetic overflow. */
uint64_t qf_pickle_view_end(const qf_pickle_tensor *t, int *overflow);
/* 1 when the view is row-major contiguous (dims of size 1 may have any stride). */
int qf_pickle_view_contiguous(const qf_pickle_tensor *t);

#ifdef __cplusplus
}
#endif

#endif /* QF_PICKLE_H */
