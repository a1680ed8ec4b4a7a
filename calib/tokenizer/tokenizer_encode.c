/* tokenizer_encode.c - text -> token ids, in the order HF `tokenizers` applies its stages:
 *
 *   text ─ split on non-normalized added tokens ─┬─ token ids
 *                                                └─ normalizer ─ split on normalized added
 *                                                   tokens ─┬─ token ids
 *                                                           └─ pre-tokenizer steps ─ pieces
 *                                                              ─ BPE per piece (cached) ─ ids
 *
 * Everything an encode call writes lives in one qf_tk_enc, so a tokenizer stays read-only
 * and may be shared between threads.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define QF_TK_CACHE_MAX_WORD 256 /* words longer than this (bytes) are not cached */

/* A piece of text under pre-tokenization: bytes [off, off+len) of qf_tk_enc.buf. */
typedef struct qf_tk_piece {
    uint32_t off, len;
    uint32_t origin; /* 1 when the piece starts at offset 0 of the input (Metaspace "first") */
} qf_tk_piece;

typedef struct qf_tk_pieces {
    qf_tk_piece *v; /* (n) */
    size_t n, cap;
} qf_tk_pieces;

/* BPE symbol: a token id covering some bytes of the word, in a doubly linked list. */
typedef struct qf_tk_sym {
    int32_t id;
    int32_t prev, next; /* indices, -1 at the ends */
    int32_t alive;      /* 0 once merged into its left neighbour */
} qf_tk_sym;

/* Candidate merge of symbols pos and its next; min-heap on (rank, pos) as in HF. */
typedef struct qf_tk_cand {
    int32_t rank, pos, merged;
} qf_tk_cand;

typedef struct qf_tk_enc {
    const qf_tokenizer *tok;
    qf_error *err;
    int32_t *ids; /* (n_ids) output */
    size_t n_ids, cap_ids;
    qf_tk_strmap cache; /* word -> (offset in cids, count) */
    int32_t *cids;      /* (n_cids) ids of cached words */
    size_t n_cids, cap_cids;
    char *buf; /* (buf_len) bytes of the current segment's pieces */
    size_t buf_len, buf_cap;
    qf_tk_pieces pa, pb;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    qf_tk_sym *sym; /* (sym_cap) BPE scratch */
    size_t sym_cap;
    qf_tk_cand *heap; /* (heap_cap) BPE scratch */
    size_t heap_cap;
} qf_tk_enc;

/* ---- growable arrays -------------------------------------------------------------------- */

static int qf_tk_reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static qf_status qf_tk_nomem(qf_tk_enc *e)
{
    return qf_fail(e->err, QF_ERR_NOMEM, "%s: out of memory encoding", e->tok->name);
}

static qf_status qf_tk_emit(qf_tk_enc *e, const int32_t *ids, size_t n)
{
    if (!qf_tk_reserve((void **)&e->ids, &e->cap_ids, e->n_ids + n, sizeof *e->ids)) return qf_tk_nomem(e);
    memcpy(e->ids + e->n_ids, ids, n * sizeof *ids);
    e->n_ids += n;
    return QF_OK;
}

/* Append bytes to buf; returns their offset, or -1 when out of memory. */
static int64_t qf_tk_buf_add(qf_tk_enc *e, const char *s, size_t n)
{
    if (!qf_tk_reserve((void **)&e->buf, &e->buf_cap, e->buf_len + n, 1)) return -1;
    if (n && s) memcpy(e->buf + e->buf_len, s, n); /* s == NULL only reserves */
    e->buf_len += n;
    return (int64_t)(e->buf_len - n);
}

static qf_status qf_tk_push(qf_tk_enc *e, qf_tk_pieces *p, size_t off, size_t len, int origin)
{
    if (len == 0) return QF_OK; /* HF drops empty splits */
    if (!qf_tk_reserve((void **)&p->v, &p->cap, p->n + 1, sizeof *p->v)) return qf_tk_nomem(e);
    p->v[p->n++] = (qf_tk_piece){.off = (uint32_t)off, .len = (uint32_t)len, .origin = (uint32_t)origin};
    return QF_OK;
}

/* ---- regex matching ---------------------------------------------------------------------- */

/* Next match of re in s[0..len) at or after *at; returns 1 and [*ms, *me), 0 when none, -1 on
 * engine failure (err filled).  Empty matches are skipped. */
static int qf_tk_next_match(qf_tk_enc *e, const pcre2_code *re, const char *s, size_t len, size_t *at,
                            size_t *ms, size_t *me)
{
    while (*at <= len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, *at, PCRE2_NO_UTF_CHECK, e->md, e->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            qf_fail(e->err, QF_ERR_GENERIC, "%s: regex match failed: %s", e->tok->name, (const char *)msg);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            *at = ov[1];
            return 1;
        }
        if (ov[0] >= len) return 0;
        *at = ov[0] + qf_tk_utf8_len((unsigned char)s[ov[0]]); /* empty match: step one character */
    }
    return 0;
}

/* Split piece p by re with an HF SplitDelimiterBehavior, pushing the results onto out. */
static qf_status qf_tk_split(qf_tk_enc *e, const qf_tk_pre *st, const qf_tk_piece *p, qf_tk_pieces *out)
{
    const char *s = e->buf + p->off;
    size_t at = 0, ms, me, prev = 0;
    /* The last pushed piece may still grow (merged behaviors): track it as [cur_s, cur_e). */
    size_t cur_s = 0, cur_e = 0;
    int have_cur = 0, prev_match = 0, m;
    qf_tk_split_behavior b = st->behavior;
#define QF_TK_FLUSH()                                                                             \
    do {                                                                                          \
        if (have_cur) QF_TRY(qf_tk_push(e, out, p->off + cur_s, cur_e - cur_s, p->origin && cur_s == 0)); \
        have_cur = 0;                                                                             \
    } while (0)
    for (;;) {
        m = qf_tk_next_match(e, st->re, s, p->len, &at, &ms, &me);
        if (m < 0) return e->err ? e->err->code : QF_ERR_GENERIC;
        size_t seg_end = m ? ms : p->len;
        /* Up to two segments: the gap [prev, seg_end) (non-match) then the match [ms, me). */
        for (int k = 0; k < 2; k++) {
            size_t a = k == 0 ? prev : ms, z = k == 0 ? seg_end : me;
            if (k == 1 && !m) break;
            if (a == z) continue;
            int is_match = (k == 1) != (st->invert != 0);
            switch (b) {
            case QF_TK_SPLIT_REMOVED:
                if (!is_match) QF_TRY(qf_tk_push(e, out, p->off + a, z - a, p->origin && a == 0));
                break;
            case QF_TK_SPLIT_ISOLATED:
                QF_TRY(qf_tk_push(e, out, p->off + a, z - a, p->origin && a == 0));
                break;
            case QF_TK_SPLIT_MERGED_WITH_PREVIOUS:
                if (is_match && !prev_match && have_cur) cur_e = z;
                else {
                    QF_TK_FLUSH();
                    cur_s = a, cur_e = z, have_cur = 1;
                }
                break;
            case QF_TK_SPLIT_MERGED_WITH_NEXT:
                /* A match opens a piece that the following non-match joins. */
                if (!is_match && prev_match && have_cur) cur_e = z;
                else {
                    QF_TK_FLUSH();
                    cur_s = a, cur_e = z, have_cur = 1;
                }
                break;
            case QF_TK_SPLIT_CONTIGUOUS:
                if (is_match == prev_match && have_cur) cur_e = z;
                else {
                    QF_TK_FLUSH();
                    cur_s = a, cur_e = z, have_cur = 1;
                }
                break;
            }
            prev_match = is_match;
        }
        if (!m) break;
        prev = me;
    }
    QF_TK_FLUSH();
#undef QF_TK_FLUSH
    return QF_OK;
}

/* ---- pre-tokenizer steps ------------------------------------------------------------------ */

/* ByteLevel: optional prefix space, optional GPT-2 regex split, then each byte becomes its
 * GPT-2 unicode symbol (the mapped pieces are appended to buf). */
static qf_status qf_tk_byte_level(qf_tk_enc *e, const qf_tk_pre *st, const qf_tk_piece *in, qf_tk_pieces *out)
{
    qf_tk_piece p = *in;
    if (st->add_prefix_space && e->buf[p.off] != ' ') {
        int64_t o = qf_tk_buf_add(e, " ", 1);
        if (o < 0 || qf_tk_buf_add(e, NULL, p.len) < 0) return qf_tk_nomem(e);
        memcpy(e->buf + o + 1, e->buf + p.off, p.len);
        p.off = (uint32_t)o;
        p.len++;
    }
    qf_tk_pieces parts = {0};
    qf_status s = QF_OK;
    if (st->re) {
        qf_tk_pre iso = *st;
        iso.behavior = QF_TK_SPLIT_ISOLATED;
        iso.invert = 0;
        s = qf_tk_split(e, &iso, &p, &parts);
    } else {
        s = qf_tk_push(e, &parts, p.off, p.len, p.origin);
    }
    const qf_tk_byte_char *map = qf_tk_byte_chars();
    for (size_t i = 0; i < parts.n && s == QF_OK; i++) {
        qf_tk_piece q = parts.v[i];
        if (qf_tk_buf_add(e, NULL, 2 * (size_t)q.len) < 0) {
            s = qf_tk_nomem(e);
            break;
        }
        e->buf_len -= 2 * (size_t)q.len;
        size_t start = e->buf_len;
        for (uint32_t k = 0; k < q.len; k++) {
            const qf_tk_byte_char *c = &map[(unsigned char)e->buf[q.off + k]];
            memcpy(e->buf + e->buf_len, c->s, c->len);
            e->buf_len += c->len;
        }
        s = qf_tk_push(e, out, start, e->buf_len - start, q.origin);
    }
    free(parts.v);
    return s;
}

/* Metaspace: ' ' -> replacement, prefix per prepend scheme, then (split) a new piece before
 * every replacement character (HF MergedWithNext). */
static qf_status qf_tk_metaspace(qf_tk_enc *e, const qf_tk_pre *st, const qf_tk_piece *p, qf_tk_pieces *out)
{
    const char *rep = st->replacement;
    size_t rl = st->replacement_len, start = e->buf_len;
    if (qf_tk_buf_add(e, NULL, rl * ((size_t)p->len + 1)) < 0) return qf_tk_nomem(e);
    e->buf_len = start;
    const char *s = e->buf + p->off;
    int starts_with_rep = p->len >= rl && memcmp(s, rep, rl) == 0;
    int prefix = !starts_with_rep && p->len > 0 &&
                 (st->prepend == QF_TK_PREPEND_ALWAYS || (st->prepend == QF_TK_PREPEND_FIRST && p->origin));
    if (s[0] == ' ') prefix = 0; /* the replaced space already starts with the replacement */
    if (prefix) memcpy(e->buf + e->buf_len, rep, rl), e->buf_len += rl;
    for (uint32_t k = 0; k < p->len; k++) {
        if (s[k] == ' ') memcpy(e->buf + e->buf_len, rep, rl), e->buf_len += rl;
        else e->buf[e->buf_len++] = s[k];
    }
    if (!st->split) return qf_tk_push(e, out, start, e->buf_len - start, p->origin);
    size_t piece = start;
    for (size_t k = start; k + rl <= e->buf_len; k++) {
        if (k > piece && memcmp(e->buf + k, rep, rl) == 0) {
            QF_TRY(qf_tk_push(e, out, piece, k - piece, p->origin && piece == start));
            piece = k;
        }
    }
    return qf_tk_push(e, out, piece, e->buf_len - piece, p->origin && piece == start);
}

/* ---- BPE ---------------------------------------------------------------------------------- */

static void qf_tk_heap_push(qf_tk_cand *h, size_t *n, qf_tk_cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent].rank < c.rank || (h[parent].rank == c.rank && h[parent].pos <= c.pos)) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = c;
}

static qf_tk_cand qf_tk_heap_pop(qf_tk_cand *h, size_t *n)
{
    qf_tk_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && (h[c + 1].rank < h[c].rank || (h[c + 1].rank == h[c].rank && h[c + 1].pos < h[c].pos))) c++;
        if (last.rank < h[c].rank || (last.rank == h[c].rank && last.pos <= h[c].pos)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static int qf_tk_add_sym(qf_tk_enc *e, size_t *n, int32_t id)
{
    if (!qf_tk_reserve((void **)&e->sym, &e->sym_cap, *n + 1, sizeof *e->sym)) return 0;
    e->sym[*n] = (qf_tk_sym){.id = id, .prev = (int32_t)*n - 1, .next = (int32_t)*n + 1, .alive = 1};
    (*n)++;
    return 1;
}

static void qf_tk_try_pair(const qf_tokenizer *tok, qf_tk_enc *e, size_t *nh, int32_t pos)
{
    const qf_tk_sym *a = &e->sym[pos];
    if (a->next < 0) return;
    const qf_tk_pair_slot *m = qf_tk_pairmap_find(&tok->merges, a->id, e->sym[a->next].id);
    if (m) qf_tk_heap_push(e->heap, nh, (qf_tk_cand){.rank = m->rank, .pos = pos, .merged = m->merged});
}

/* BPE of one pre-tokenized word w[0..len): characters to ids (byte fallback / unk), then
 * merges by rank, lowest first, leftmost among equal ranks (HF Word::merge_all). */
static qf_status qf_tk_bpe(qf_tk_enc *e, const char *w, size_t len)
{
    const qf_tokenizer *tok = e->tok;
    if (len == 0) return QF_OK;
    uint64_t h = qf_tk_hash(w, len);
    if (tok->ignore_merges) {
        const qf_tk_slot *v = qf_tk_strmap_find(&tok->vocab, w, len, h);
        if (v) return qf_tk_emit(e, &v->a, 1);
    }
    int cacheable = len <= QF_TK_CACHE_MAX_WORD;
    if (cacheable) {
        const qf_tk_slot *c = qf_tk_strmap_find(&e->cache, w, len, h);
        if (c) return qf_tk_emit(e, e->cids + c->a, (size_t)c->b);
    }

    size_t n = 0, unk_pending = 0;
    for (size_t i = 0; i < len;) {
        size_t cl = qf_tk_utf8_len((unsigned char)w[i]);
        int32_t id = -1;
        if (cl == 1) id = tok->char1_id[(unsigned char)w[i]];
        else {
            const qf_tk_slot *v = qf_tk_strmap_find(&tok->vocab, w + i, cl, qf_tk_hash(w + i, cl));
            if (v) id = v->a;
        }
        int ok = 1;
        if (id >= 0) {
            if (unk_pending) ok = qf_tk_add_sym(e, &n, tok->unk_id), unk_pending = 0;
            ok = ok && qf_tk_add_sym(e, &n, id);
        } else {
            int all_bytes = tok->byte_fallback;
            for (size_t k = 0; k < cl && all_bytes; k++) all_bytes = tok->byte_id[(unsigned char)w[i + k]] >= 0;
            if (all_bytes) {
                if (unk_pending) ok = qf_tk_add_sym(e, &n, tok->unk_id), unk_pending = 0;
                for (size_t k = 0; k < cl && ok; k++) ok = qf_tk_add_sym(e, &n, tok->byte_id[(unsigned char)w[i + k]]);
            } else if (tok->unk_id >= 0) {
                if (unk_pending && !tok->fuse_unk) ok = qf_tk_add_sym(e, &n, tok->unk_id);
                unk_pending = 1;
            } /* no unk token: the character is dropped, as HF does */
        }
        if (!ok) return qf_tk_nomem(e);
        i += cl;
    }
    if (unk_pending && !qf_tk_add_sym(e, &n, tok->unk_id)) return qf_tk_nomem(e);
    if (n == 0) return QF_OK;
    e->sym[n - 1].next = -1;

    if (!qf_tk_reserve((void **)&e->heap, &e->heap_cap, 2 * n + 2, sizeof *e->heap)) return qf_tk_nomem(e);
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++) qf_tk_try_pair(tok, e, &nh, (int32_t)i);
    while (nh) {
        /* Each merge pushes at most two candidates and removes one symbol: 2n bounds the heap. */
        qf_tk_cand c = qf_tk_heap_pop(e->heap, &nh);
        qf_tk_sym *a = &e->sym[c.pos];
        if (!a->alive || a->next < 0) continue;
        qf_tk_sym *b = &e->sym[a->next];
        const qf_tk_pair_slot *m = qf_tk_pairmap_find(&tok->merges, a->id, b->id);
        if (!m || m->merged != c.merged) continue; /* stale candidate */
        a->id = c.merged;
        b->alive = 0;
        a->next = b->next;
        if (b->next >= 0) e->sym[b->next].prev = c.pos;
        if (a->prev >= 0) qf_tk_try_pair(tok, e, &nh, a->prev);
        qf_tk_try_pair(tok, e, &nh, c.pos);
    }

    size_t start = e->n_ids, count = 0;
    for (int32_t i = 0; i >= 0; i = e->sym[i].next) {
        QF_TRY(qf_tk_emit(e, &e->sym[i].id, 1));
        count++;
    }
    if (cacheable) {
        qf_tk_slot *slot;
        int is_new;
        if (!qf_tk_reserve((void **)&e->cids, &e->cap_cids, e->n_cids + count, sizeof *e->cids) ||
            qf_tk_strmap_put(&e->cache, w, len, h, &slot, &is_new) != QF_OK)
            return qf_tk_nomem(e);
        memcpy(e->cids + e->n_cids, e->ids + start, count * sizeof *e->cids);
        slot->a = (int32_t)e->n_cids;
        slot->b = (int32_t)count;
        e->n_cids += count;
    }
    return QF_OK;
}

/* ---- segments ---------------------------------------------------------------------------- */

/* Pre-tokenize one text segment (no added tokens left in it) and BPE its pieces. */
static qf_status qf_tk_encode_segment(qf_tk_enc *e, const char *s, size_t len, int origin)
{
    const qf_tokenizer *tok = e->tok;
    e->buf_len = 0;
    e->pa.n = 0;
    if (qf_tk_buf_add(e, s, len) < 0) return qf_tk_nomem(e);
    QF_TRY(qf_tk_push(e, &e->pa, 0, len, origin));
    for (size_t k = 0; k < tok->n_pre; k++) {
        const qf_tk_pre *st = &tok->pre[k];
        e->pb.n = 0;
        for (size_t i = 0; i < e->pa.n; i++) {
            const qf_tk_piece *p = &e->pa.v[i];
            if (st->type == QF_TK_PRE_SPLIT) QF_TRY(qf_tk_split(e, st, p, &e->pb));
            else if (st->type == QF_TK_PRE_BYTE_LEVEL) QF_TRY(qf_tk_byte_level(e, st, p, &e->pb));
            else QF_TRY(qf_tk_metaspace(e, st, p, &e->pb));
        }
        qf_tk_pieces t = e->pa;
        e->pa = e->pb;
        e->pb = t;
    }
    for (size_t i = 0; i < e->pa.n; i++) QF_TRY(qf_tk_bpe(e, e->buf + e->pa.v[i].off, e->pa.v[i].len));
    return QF_OK;
}

static int qf_tk_is_word_at(const qf_tk_enc *e, const char *s, size_t len, size_t at)
{
    int rc = pcre2_match(e->tok->word_re, (PCRE2_SPTR)s, len, at, PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED, e->md, NULL);
    return rc >= 0;
}

static qf_status qf_tk_encode_added(qf_tk_enc *e, const char *s, size_t len, int origin, int stage);

/* A non-added-token range: stage 0 normalizes it and looks for normalized added tokens,
 * stage 1 pre-tokenizes it. */
static qf_status qf_tk_encode_rest(qf_tk_enc *e, const char *s, size_t len, int origin, int stage)
{
    if (len == 0) return QF_OK;
    if (stage == 1) return qf_tk_encode_segment(e, s, len, origin);
    if (e->tok->n_norm == 0) return qf_tk_encode_added(e, s, len, origin, 1);
    char *norm;
    size_t norm_len;
    QF_TRY(qf_tk_normalize(e->tok, s, len, &norm, &norm_len, e->err));
    qf_status st = qf_tk_encode_added(e, norm, norm_len, origin, 1);
    free(norm);
    return st;
}

/* HF AddedVocabulary::find_matches: leftmost-longest literal matches, non-overlapping;
 * single_word rejects a match inside a word, lstrip/rstrip widen it over whitespace. */
static qf_status qf_tk_encode_added(qf_tk_enc *e, const char *s, size_t len, int origin, int stage)
{
    const qf_tk_matcher *m = stage == 0 ? &e->tok->match_raw : &e->tok->match_norm;
    if (m->n == 0) return qf_tk_encode_rest(e, s, len, origin, stage);
    size_t done = 0; /* text before this offset is handled */
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        const qf_tk_added *hit = NULL;
        for (uint32_t k = m->first[c]; k < m->first[c + 1]; k++) {
            const qf_tk_added *a = m->pat[k];
            if (a->match_len <= len - i && memcmp(s + i, a->match, a->match_len) == 0) {
                hit = a;
                break;
            }
        }
        if (!hit) {
            i++;
            continue;
        }
        size_t start = i, stop = i + hit->match_len;
        i = stop;
        if (start < done) continue; /* inside a previous token's rstrip */
        if (hit->single_word) {
            size_t cs;
            if (start > 0) (void)qf_tk_utf8_decode_last(s, start, &cs);
            if ((start > 0 && qf_tk_is_word_at(e, s, len, cs)) || (stop < len && qf_tk_is_word_at(e, s, len, stop)))
                continue;
        }
        if (hit->lstrip) {
            size_t ns = start, cs;
            while (ns > done && qf_tk_is_white_space(qf_tk_utf8_decode_last(s, ns, &cs))) ns = cs;
            start = ns;
        }
        if (hit->rstrip) {
            size_t n;
            while (stop < len && qf_tk_is_white_space(qf_tk_utf8_decode(s + stop, &n))) stop += n;
        }
        QF_TRY(qf_tk_encode_rest(e, s + done, start - done, origin && done == 0, stage));
        QF_TRY(qf_tk_emit(e, &hit->id, 1));
        done = stop;
        if (i < stop) i = stop;
    }
    return qf_tk_encode_rest(e, s + done, len - done, origin && done == 0, stage);
}

/* ---- entry point ------------------------------------------------------------------------- */

qf_status qf_tokenizer_encode(const qf_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                              size_t *n_ids, qf_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    size_t valid = len ? qf_tk_utf8_valid_prefix(text, len) : 0;
    if (valid != len)
        return qf_fail(err, QF_ERR_FORMAT, "text is not valid UTF-8 at byte offset %zu", valid);
    if (len > UINT32_MAX / 4)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "text of %zu bytes is too long to encode in one call (max %u)", len,
                       UINT32_MAX / 4);
    qf_tk_enc e = {.tok = tok, .err = err};
    qf_status st = QF_OK;
    e.md = pcre2_match_data_create(64, NULL);
    e.mctx = pcre2_match_context_create(NULL);
    e.jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!e.md || !e.mctx || !e.jit || !qf_tk_reserve((void **)&e.ids, &e.cap_ids, len / 3 + 16, sizeof *e.ids)) {
        st = qf_tk_nomem(&e);
    } else {
        pcre2_jit_stack_assign(e.mctx, NULL, e.jit);
        st = qf_tk_encode_added(&e, text ? text : "", len, 1, 0);
    }
    pcre2_match_data_free(e.md);
    pcre2_match_context_free(e.mctx);
    pcre2_jit_stack_free(e.jit);
    qf_tk_strmap_free(&e.cache);
    free(e.cids);
    free(e.buf);
    free(e.pa.v);
    free(e.pb.v);
    free(e.sym);
    free(e.heap);
    if (st != QF_OK) {
        free(e.ids);
        return st;
    }
    *ids = e.ids;
    *n_ids = e.n_ids;
    return QF_OK;
}
