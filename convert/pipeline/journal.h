/* journal.h - internal to convert/: the resume journal of a conversion.
 *
 * Owns OUT.qforge-tmp/qforge.journal.json: a key naming the exact job (recipe, source files'
 * names, sizes and mtimes, tool version) and, for every completed shard, its name, size,
 * XXH3-128 and its tensors' hashes.  A shard enters the journal only after it was fsynced, and
 * the journal is replaced atomically, so after a kill at any point the journal lists only
 * complete shards.  A rerun with the same key re-hashes each journaled shard and skips those
 * that still match; anything else is rewritten, so the result is byte-identical to an
 * uninterrupted run.
 */
#ifndef QF_JOURNAL_H
#define QF_JOURNAL_H

#include <jansson.h>

#include "qf_error.h"
#include "qf_hash.h"
#include "qf_sha256.h"

#define QF_JOURNAL_NAME "qforge.journal.json"

/* Key of a job: XXH3-128 of the recipe and the source identity (hex, 32 chars + NUL). */
void qf_journal_key(json_t *recipe, const char *src_dir, char *hex);
/* Journal of tmp if its key matches (new reference), else NULL. */
json_t *qf_journal_load(const char *tmp, const char *key);
/* New empty journal for key. */
json_t *qf_journal_new(const char *key);
/* A journaled shard that still matches on disk: returns its entry (borrowed) or NULL. */
json_t *qf_journal_shard(json_t *j, const char *tmp, const char *name);
/* Record a completed shard and write the journal atomically. */
qf_status qf_journal_add(json_t *j, const char *tmp, const char *name, uint64_t size, qf_hash128 h,
                         const qf_sha256 *sha, const qf_hash128 *tensor_hashes, int n, qf_error *err);

#endif
