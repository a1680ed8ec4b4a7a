/* tokenizer_internal.h - internal to calib/tokenizer/qf_tokenizer.c and calib/tokenizer_*.c: the
 * qf_tokenizer layout, its hash tables and the pipeline step descriptors.
 *
 * Layout of a loaded tokenizer:
 *   vocab      token string -> id (open addressing; key bytes in the map's own blob)
 *   text_off   (n_ids) offset of each id's NUL-terminated text in vocab.blob, or -1
 *   merges     (left id, right id) -> (rank, merged id); pairs also kept in rank order
 *   added      added tokens, matched literally in the text before anything else
 *   norm/pre   the normalizer and pre-tokenizer steps, Sequence nesting flattened
 */
#ifndef QF_TOKENIZER_INTERNAL_H
#define QF_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_error.h"
#include "qf_tokenizer.h"

/* ---- string -> (a, b) map ----------------------------------------------------------- */

typedef struct qf_tk_slot {
    uint64_t hash; /* 0 marks an empty slot (real hashes are forced non-zero) */
    uint32_t off;  /* key offset in blob (bytes) */
    uint32_t len;  /* key length (bytes, without the NUL the blob stores after it) */
    int32_t a, b;  /* values: vocab uses a = id; the encode cache a = ids offset, b = count */
} qf_tk_slot;

typedef struct qf_tk_strmap {
    qf_tk_slot *slots; /* (cap) cap a power of two, load <= 1/2 */
    size_t cap, count;
    char *blob; /* (blob_len) keys, each followed by a NUL */
    size_t blob_len, blob_cap;
} qf_tk_strmap;

uint64_t qf_tk_hash(const char *s, size_t len);
/* Slot holding key s[0..len), or NULL. */
const qf_tk_slot *qf_tk_strmap_find(const qf_tk_strmap *m, const char *s, size_t len, uint64_t h);
/* Insert key (or find it): *slot points at its slot (valid until the next insert); *is_new
 * says whether it was just added (then a and b are 0). */
qf_status qf_tk_strmap_put(qf_tk_strmap *m, const char *s, size_t len, uint64_t h, qf_tk_slot **slot,
                           int *is_new);
void qf_tk_strmap_free(qf_tk_strmap *m);

/* ---- (id, id) -> (rank, merged id) map --------------------------------------------- */

typedef struct qf_tk_pair_slot {
    uint64_t key;   /* left << 32 | right */
    int32_t rank;   /* -1 marks an empty slot */
    int32_t merged; /* id of left+right */
} qf_tk_pair_slot;

typedef struct qf_tk_pairmap {
    qf_tk_pair_slot *slots; /* (cap) power of two, load <= 1/2 */
    size_t cap, count;
} qf_tk_pairmap;

qf_status qf_tk_pairmap_init(qf_tk_pairmap *m, size_t expected);
/* Insert or overwrite (a later duplicate merge wins, as in HF). */
void qf_tk_pairmap_put(qf_tk_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t merged);
const qf_tk_pair_slot *qf_tk_pairmap_find(const qf_tk_pairmap *m, int32_t left, int32_t right);
void qf_tk_pairmap_free(qf_tk_pairmap *m);

/* ---- UTF-8 helpers ------------------------------------------------------------------ */

/* Length of the valid UTF-8 prefix of s[0..len) (== len when all valid). */
size_t qf_tk_utf8_valid_prefix(const char *s, size_t len);
/* Bytes in the UTF-8 sequence led by byte c (1 for stray continuation bytes). */
static inline size_t qf_tk_utf8_len(unsigned char c)
{
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
/* Decode the code point at s (valid UTF-8 assumed). */
uint32_t qf_tk_utf8_decode(const char *s, size_t *n);
/* Code point ending at s[end-1] (valid UTF-8 assumed); *start gets its first byte. */
uint32_t qf_tk_utf8_decode_last(const char *s, size_t end, size_t *start);
/* Encode cp; returns bytes written (1..4) to out. */
size_t qf_tk_utf8_encode(uint32_t cp, char *out);
/* Unicode White_Space property (what Rust's char::is_whitespace tests). */
int qf_tk_is_white_space(uint32_t cp);

/* ---- pipeline ----------------------------------------------------------------------- */

typedef enum qf_tk_norm_type {
    QF_TK_NORM_PREPEND = 1,     /* prepend str if the text is non-empty */
    QF_TK_NORM_REPLACE_STR = 2, /* replace every pattern occurrence with str */
    QF_TK_NORM_REPLACE_RE = 3,  /* replace every regex match with str */
    QF_TK_NORM_NFC = 4,         /* Unicode NFC (tokenizer_nfc.c) */
} qf_tk_norm_type;

typedef struct qf_tk_norm {
    qf_tk_norm_type type;
    char *pattern; /* (pattern_len) REPLACE_STR */
    size_t pattern_len;
    char *str; /* (str_len) text to prepend / replacement */
    size_t str_len;
    pcre2_code *re; /* REPLACE_RE */
} qf_tk_norm;

/* HF SplitDelimiterBehavior. */
typedef enum qf_tk_split_behavior {
    QF_TK_SPLIT_REMOVED = 1,
    QF_TK_SPLIT_ISOLATED = 2,
    QF_TK_SPLIT_MERGED_WITH_PREVIOUS = 3,
    QF_TK_SPLIT_MERGED_WITH_NEXT = 4,
    QF_TK_SPLIT_CONTIGUOUS = 5,
} qf_tk_split_behavior;

typedef enum qf_tk_pre_type {
    QF_TK_PRE_SPLIT = 1,      /* regex (or literal) split with a behavior */
    QF_TK_PRE_BYTE_LEVEL = 2, /* optional prefix space, optional GPT-2 regex, bytes -> unicode */
    QF_TK_PRE_METASPACE = 3,  /* ' ' -> replacement, optional prefix, optional split */
} qf_tk_pre_type;

typedef enum qf_tk_prepend_scheme {
    QF_TK_PREPEND_ALWAYS = 1,
    QF_TK_PREPEND_FIRST = 2, /* only for the piece at the start of the input */
    QF_TK_PREPEND_NEVER = 3,
} qf_tk_prepend_scheme;

typedef struct qf_tk_pre {
    qf_tk_pre_type type;
    pcre2_code *re; /* SPLIT pattern; BYTE_LEVEL GPT-2 pattern when use_regex; else NULL */
    qf_tk_split_behavior behavior;
    int invert;
    int add_prefix_space; /* BYTE_LEVEL */
    char replacement[8];  /* METASPACE: UTF-8 of the replacement char (NUL-terminated) */
    size_t replacement_len;
    qf_tk_prepend_scheme prepend;
    int split; /* METASPACE */
} qf_tk_pre;

typedef struct qf_tk_added {
    char *content; /* (len) NUL-terminated token text */
    size_t len;
    char *match; /* (match_len) what is matched: content, or for a normalized token its
                    normalized form (then a separate allocation) */
    size_t match_len;
    int32_t id;
    unsigned char lstrip, rstrip, single_word, normalized, special;
} qf_tk_added;

/* Literal matcher: patterns sorted by first byte then by length descending, so the first
 * hit in a first-byte bucket is the longest (HF's aho-corasick LeftmostLongest). */
typedef struct qf_tk_matcher {
    const qf_tk_added **pat; /* (n) borrowed from qf_tokenizer.added */
    size_t n;
    uint32_t first[257]; /* pat[first[c] .. first[c+1]) start with byte c */
} qf_tk_matcher;

struct qf_tokenizer {
    char *name; /* file path or name, for messages */
    qf_tokenizer_kind kind;

    qf_tk_strmap vocab; /* token text -> id (model vocab only) */
    const char **texts; /* (n_ids) NUL-terminated text of each id or NULL; points into
                           vocab.blob or added[].content, set once the vocab is complete */
    uint8_t *flags;     /* (n_ids) QF_TOKEN_FLAG_* */
    int32_t n_ids;      /* max id + 1 */

    qf_tk_pairmap merges;
    int32_t *merge_pairs; /* (n_merges, 2) left, right ids in rank order */
    size_t n_merges;

    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;        /* -1 when the model has no unk_token */
    int32_t byte_id[256];  /* id of "<0xNN>" (byte fallback), -1 if absent */
    int32_t char1_id[256]; /* id of the one-byte token string c, -1 if absent (fast path) */

    qf_tk_added *added; /* (n_added) */
    size_t n_added;
    qf_tk_matcher match_raw;  /* non-normalized added tokens, matched on the raw text */
    qf_tk_matcher match_norm; /* normalized added tokens, matched after the normalizer */

    qf_tk_norm *norm; /* (n_norm) applied in order */
    size_t n_norm;
    qf_tk_pre *pre; /* (n_pre) applied in order */
    size_t n_pre;
    pcre2_code *word_re; /* "\w", for single_word added tokens; NULL if none needs it */

    qf_tokenizer_specials specials;
};

/* GPT-2 bytes_to_unicode: UTF-8 of the code point standing for byte b (1 or 2 bytes). */
typedef struct qf_tk_byte_char {
    char s[2];
    uint8_t len;
} qf_tk_byte_char;
extern const qf_tk_byte_char *qf_tk_byte_chars(void);

/* Compile pattern (UTF, UCP; literal when literal != 0), JIT when available.  name and
 * what go into the error message. */
qf_status qf_tk_regex_compile(const char *pattern, size_t len, int literal, const char *name,
                              const char *what, pcre2_code **out, qf_error *err);

/* JSON field helpers (qf_tokenizer.c): absent or null gives def / NULL (then an error unless
 * optional); a wrong type is QF_ERR_FORMAT naming file `name` and `where`.key. */
qf_status qf_tk_get_bool(const json_t *obj, const char *key, int def, int *out, const char *name, const char *where,
                         qf_error *err);
qf_status qf_tk_get_str(const json_t *obj, const char *key, int optional, const char **out, size_t *len,
                        const char *name, const char *where, qf_error *err);
char *qf_tk_memdup(const char *s, size_t len); /* malloc'd copy plus a NUL, or NULL */

/* Parse a normalizer / pre_tokenizer object (null accepted) and append its steps to tok
 * (tokenizer_pipeline.c).  Unknown types are QF_ERR_UNSUPPORTED naming the file. */
qf_status qf_tk_parse_normalizer(qf_tokenizer *tok, const json_t *j, int depth, qf_error *err);
qf_status qf_tk_parse_pre(qf_tokenizer *tok, const json_t *j, int depth, qf_error *err);

/* Apply the normalizer steps to in[0..len): *out is a malloc'd result (caller frees). */
qf_status qf_tk_normalize(const qf_tokenizer *tok, const char *in, size_t len, char **out, size_t *out_len,
                          qf_error *err);

/* NFC of in[0..len) (valid UTF-8) into a malloc'd *out (caller frees); tokenizer_nfc.c. */
qf_status qf_tk_nfc(const char *in, size_t len, char **out, size_t *out_len, qf_error *err);

/* Unicode tables for NFC, generated into tokenizer_nfc_data.c (docs/tokenizer.md). */
typedef struct qf_tk_nfc_pair {
    uint32_t first, second, composite;
} qf_tk_nfc_pair;
extern const uint32_t qf_tk_nfc_ccc[];       /* (n_ccc) code point << 8 | class, ascending */
extern const uint32_t qf_tk_nfc_decomp_cp[]; /* (n_decomp) decomposable code points, ascending */
extern const uint16_t qf_tk_nfc_decomp_off[]; /* (n_decomp + 1) decomposition of decomp_cp[i] is
                                                 decomp_seq[off[i] .. off[i + 1]) */
extern const uint32_t qf_tk_nfc_decomp_seq[];
extern const qf_tk_nfc_pair qf_tk_nfc_comp[]; /* (n_comp) ascending by (first, second) */
extern const size_t qf_tk_nfc_n_ccc, qf_tk_nfc_n_decomp, qf_tk_nfc_n_comp;

/* A normalizer step may make its text at most this many times the input (+ 4 KiB). */
#define QF_TK_NORM_GROWTH 16

/* Rust regex's Unicode \w (HF single_word tests "\w$" / "^\w"); PCRE2's own \w differs
 * (it counts every \p{N}, e.g. "²", and no marks). */
#define QF_TK_WORD_CLASS "[\\p{Alphabetic}\\p{M}\\p{Pc}\\p{Nd}\\x{200C}\\x{200D}]"

#define QF_TK_GPT2_PATTERN \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

#endif /* QF_TOKENIZER_INTERNAL_H */
