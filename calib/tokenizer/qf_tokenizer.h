/* qf_tokenizer.h - Hugging Face tokenizer.json (BPE) loading and text encoding.
 *
 * Owns one immutable qf_tokenizer built from a tokenizer.json: the vocabulary, the BPE
 * merges in rank order, the added (special) tokens, the normalizer and pre-tokenizer
 * pipeline, and the special-token ids read from tokenizer_config.json.  Two BPE flavours
 * are supported: byte-level BPE (GPT-2, Llama-3, Qwen2, GPT-OSS: ByteLevel pre-tokenizer,
 * optionally after regex Split steps) and SentencePiece-style BPE (Llama-2, Mistral: "▁"
 * for spaces via normalizer or Metaspace, <0xNN> byte fallback).  Anything else (WordPiece,
 * Unigram, unknown normalizer or pre-tokenizer types) is refused with QF_ERR_UNSUPPORTED;
 * malformed files give QF_ERR_FORMAT; both name the file.  docs/tokenizer.md says how
 * encoding matches the HF `tokenizers` library and where it does not.
 *
 * Ownership: qf_tokenizer_load* allocates the tokenizer, qf_tokenizer_free releases it
 * (NULL accepted).  Strings returned by accessors are borrowed from the tokenizer and live
 * until it is freed.  qf_tokenizer_encode returns a malloc'd id array the caller free()s.
 * A loaded tokenizer is never modified by encoding, so one tokenizer may encode from many
 * threads at once; only qf_tokenizer_load_config writes to it.
 */
#ifndef QF_TOKENIZER_H
#define QF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_tokenizer qf_tokenizer;

/* Which BPE flavour the file describes; GGUF calls these "gpt2" and "llama".  Values are
 * pinned (they may reach files): append only. */
typedef enum qf_tokenizer_kind {
    QF_TOKENIZER_KIND_BYTE_BPE = 1, /* ByteLevel pre-tokenizer: GPT-2 bytes-to-unicode symbols */
    QF_TOKENIZER_KIND_SPM_BPE  = 2, /* SentencePiece BPE: "▁" spaces, <0xNN> byte fallback */
    QF_TOKENIZER_KIND_PLAIN_BPE = 3, /* BPE over raw characters, neither of the above */
} qf_tokenizer_kind;

/* Per-token flags (qf_tokenizer_token_flags), for a writer's token-type table. */
enum {
    QF_TOKEN_FLAG_ADDED   = 1 << 0, /* listed in added_tokens */
    QF_TOKEN_FLAG_SPECIAL = 1 << 1, /* added token with "special": true (control token) */
    QF_TOKEN_FLAG_BYTE    = 1 << 2, /* byte-fallback token <0xNN> of an SPM tokenizer */
    QF_TOKEN_FLAG_UNK     = 1 << 3, /* the model's unk_token */
};

/* Special token ids; -1 where the files name none. */
typedef struct qf_tokenizer_specials {
    int32_t bos, eos, unk, pad;
    int add_bos, add_eos; /* tokenizer_config add_bos_token / add_eos_token: 1, 0, or -1 if absent */
} qf_tokenizer_specials;

/* Load tokenizer.json at path.  On success *out owns a new tokenizer (free with
 * qf_tokenizer_free).  On failure *out is NULL and err names the file: QF_ERR_IO (cannot
 * read), QF_ERR_FORMAT (bad JSON, missing or ill-typed field, merge of unknown tokens),
 * QF_ERR_UNSUPPORTED (model or pipeline type not handled), QF_ERR_NOMEM. */
qf_status qf_tokenizer_load(const char *tokenizer_json_path, qf_tokenizer **out, qf_error *err);

/* Same, from a JSON text in memory (json[0..len), need not be NUL-terminated); name is
 * used in error messages in place of the path. */
qf_status qf_tokenizer_load_json(const char *json, size_t len, const char *name, qf_tokenizer **out,
                                 qf_error *err);

/* Read bos/eos/pad token names and add_bos_token/add_eos_token from a tokenizer_config.json
 * and resolve them to ids (a name that is no token is left at -1).  Optional: without it
 * bos/eos/pad are -1.  Returns QF_ERR_IO / QF_ERR_FORMAT naming the file; tok is unchanged
 * on failure. */
qf_status qf_tokenizer_load_config(qf_tokenizer *tok, const char *tokenizer_config_path, qf_error *err);

/* Release everything; NULL accepted. */
void qf_tokenizer_free(qf_tokenizer *tok);

/* Encode text[0..len) (UTF-8; NUL bytes allowed; text may be NULL when len is 0) as HF
 * `tokenizer.encode(text, add_special_tokens=False)` does: added tokens are matched
 * literally first, no BOS/EOS is added.  On success *ids is a malloc'd array of *n_ids ids
 * (never NULL, even for 0 ids) that the caller free()s.  Fails with QF_ERR_FORMAT (text is
 * not valid UTF-8; the message gives the byte offset), QF_ERR_UNSUPPORTED (len over 1 GiB),
 * QF_ERR_NOMEM, or QF_ERR_GENERIC (regex engine failure, e.g. its match limit); then *ids is
 * NULL and *n_ids 0.  Thread-safe for one tokenizer. */
qf_status qf_tokenizer_encode(const qf_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                              size_t *n_ids, qf_error *err);

/* Max id + 1 over the vocabulary and the added tokens (ids in between may have no text). */
int32_t qf_tokenizer_vocab_size(const qf_tokenizer *tok);

/* Raw vocabulary string of id, NUL-terminated, borrowed (byte-level tokens in their GPT-2
 * unicode form, e.g. "Ġthe"); an added token's content for added ids; NULL if id has none. */
const char *qf_tokenizer_token_text(const qf_tokenizer *tok, int32_t id);

/* Id of the exact token string s[0..len) (added tokens first, then vocabulary); -1 if none. */
int32_t qf_tokenizer_token_id(const qf_tokenizer *tok, const char *s, size_t len);

/* QF_TOKEN_FLAG_* bits of id; 0 for ordinary or out-of-range ids. */
unsigned qf_tokenizer_token_flags(const qf_tokenizer *tok, int32_t id);

qf_tokenizer_kind qf_tokenizer_kind_of(const qf_tokenizer *tok);

/* Number of merges; merge `rank` (0 = applied first) joins token ids *left and *right
 * (their texts give GGUF's "left right" strings).  Returns -1 if rank is out of range. */
size_t qf_tokenizer_merge_count(const qf_tokenizer *tok);
int qf_tokenizer_merge(const qf_tokenizer *tok, size_t rank, int32_t *left, int32_t *right);

/* Special token ids (bos/eos/pad need qf_tokenizer_load_config first). */
qf_tokenizer_specials qf_tokenizer_special_ids(const qf_tokenizer *tok);

#ifdef __cplusplus
}
#endif

#endif /* QF_TOKENIZER_H */
